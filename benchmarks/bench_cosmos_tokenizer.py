"""Cosmos tokenizer: encode and decode frames per second on this CPU, whole clip versus streaming (the
first frame, then group by group with the causal cache), and the peak memory each takes.

Each measurement runs in a fresh process so that its peak resident memory is its own. Speed does not
depend on the weights: the models are built from the shipped training configuration.

    python -m benchmarks cosmos_tokenizer            # as part of `make bench`
    python -m benchmarks.bench_cosmos_tokenizer --frames 33 --size 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

CONFIG = "training/configs/cosmos_tokenizer_physics.yaml"


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(variant: str, mode: str, frames: int, size: int, repeats: int) -> dict[str, float]:
    """Encode and decode one clip `(1, frames, 3, size, size)`; frames/s of each and the peak resident
    memory above the loaded model (MiB). Runs in the calling process: call it in a fresh one."""
    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
    from wm_hub.trainer import load_yaml

    torch.set_num_threads(2)
    model_args = load_yaml(CONFIG)[variant]["model"]
    model = CausalVideoTokenizer(**model_args, quantizer=variant).eval()
    video = torch.rand(1, frames, 3, size, size) * 2 - 1
    tc = model.config.temporal_compression

    def encode() -> torch.Tensor:
        if mode == "whole":
            return model.encode(video).latent_dist.mode()
        state: dict = {}
        groups = [video[:, :1]] + [video[:, i: i + tc] for i in range(1, frames, tc)]
        return torch.cat([model.encode(g, state=state).latent_dist.mode() for g in groups], dim=1)

    def decode(latents: torch.Tensor) -> torch.Tensor:
        if mode == "whole":
            return model.decode(latents).sample
        state: dict = {}
        return torch.cat([model.decode(latents[:, i: i + 1], state=state).sample
                          for i in range(latents.shape[1])], dim=1)

    base = _rss_mib()
    with torch.no_grad():
        latents = encode()  # warm-up
        decode(latents)
        begin = time.perf_counter()
        for _ in range(repeats):
            latents = encode()
        encode_s = (time.perf_counter() - begin) / repeats
        begin = time.perf_counter()
        for _ in range(repeats):
            decode(latents)
        decode_s = (time.perf_counter() - begin) / repeats
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"encode_fps": frames / encode_s, "decode_fps": frames / decode_s, "peak_mib": peak - base}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=33, help="1 + k * temporal compression")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv or [])
    if args.one:
        print(json.dumps(measure(*args.one, args.frames, args.size, args.repeats)))
        return
    print(f"one clip of {args.frames} frames at {args.size}x{args.size}, 2 threads; peak memory: resident, "
          f"above the loaded model")
    print("| variant | mode | encode frames/s | decode frames/s | peak memory (MiB) |")
    print("|---|---|---|---|---|")
    for variant in ("continuous", "discrete"):
        for mode in ("whole", "streaming"):
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_cosmos_tokenizer", "--one", variant, mode,
                 "--frames", str(args.frames), "--size", str(args.size), "--repeats", str(args.repeats)],
                capture_output=True, text=True, check=True)
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"| {variant} | {mode} | {r['encode_fps']:.1f} | {r['decode_fps']:.1f} | {r['peak_mib']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
