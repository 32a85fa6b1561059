"""Cosmos-style autoregressive world model: generation speed on this CPU with and without the key/value
cache, by context length. Each row times `generate()` of one latent frame (h*w tokens, `temporal_compression`
video frames) after `context` latent frames of tokens: with the cache its cost stays flat as the context
grows; without it, every token re-reads the whole sequence.

    python -m benchmarks cosmos_ar                    # as part of `make bench`
    python -m benchmarks.bench_cosmos_ar --name FOLDER --repeats 3

Needs the shipped `cosmos-ar-physics-64` (or `--name`: a pipeline or model folder); without it, the
table says so and stops.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks import load_or_say


def seconds_per_frame(model, context: int, use_cache: bool, repeats: int, text: dict) -> float:
    c = model.config
    ids = torch.randint(0, c.vocab_size, (1, context * c.tokens_per_frame), generator=torch.Generator().manual_seed(0))
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        model.generate(ids, max_new_tokens=c.tokens_per_frame, do_sample=False, use_cache=use_cache, **text)
        best = min(best, time.perf_counter() - begin)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="cosmos-ar-physics-64")
    parser.add_argument("--repeats", type=int, default=2, help="timings per row (the best is kept)")
    parser.add_argument("--contexts", type=int, nargs="+", default=None,
                        help="context lengths in latent frames (default: 1 .. max_latent_frames - 1)")
    args = parser.parse_args(argv or [])
    torch.set_num_threads(2)
    loaded = load_or_say(args.name)
    if loaded is None:
        return
    model = getattr(loaded, "transformer", loaded).eval()
    c = model.config
    frames_per_latent = loaded.vae.config.temporal_compression if hasattr(loaded, "vae") else 4
    text = {}
    if c.cross_attention_dim is not None:
        text = {"encoder_hidden_states": torch.randn(1, 16, c.cross_attention_dim),
                "encoder_attention_mask": torch.ones(1, 16, dtype=torch.long)}
    contexts = args.contexts or list(range(1, c.max_latent_frames))
    print(f"{args.name}, {torch.get_num_threads()} threads, latent frames of {c.latent_height}x{c.latent_width} "
          f"tokens ({frames_per_latent} video frames each), greedy decoding")
    print("| context (latent frames) | KV cache | seconds per latent frame | tokens/s | video frames/s |")
    print("|---|---|---|---|---|")
    with torch.no_grad():
        for context in contexts:
            for use_cache in (True, False):
                seconds = seconds_per_frame(model, context, use_cache, args.repeats, text)
                print(f"| {context} | {'yes' if use_cache else 'no'} | {seconds:.3f} | "
                      f"{c.tokens_per_frame / seconds:.0f} | {frames_per_latent / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
