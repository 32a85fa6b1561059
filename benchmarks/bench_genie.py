"""Genie: frames per second of `session.step` on this CPU at 64x64, by MaskGIT steps and dtype, and the
PSNR each setting costs against 25 steps (16-frame rollouts driven by inferred latent actions, on
held-out levels).

    python -m benchmarks genie                       # as part of `make bench`
    python -m benchmarks.bench_genie --name FOLDER --clips 32
"""

from __future__ import annotations

import argparse
import time

import torch

from wm_hub.data import record_episodes
from wm_hub.envs.platformer import ExplorationPolicy, PlatformerEnv
from wm_hub.hub import load
from wm_hub.metrics import psnr
from wm_hub.models.genie.evaluation_genie import PSNR_CAP, rollout_psnr
from wm_hub.models.genie.play_genie import platformer_prompts


def frames_per_second(pipe, steps: int, frames: int = 24, dtype: torch.dtype = torch.float32) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        session = pipe.start(platformer_prompts(1)[0], generator=torch.Generator().manual_seed(0),
                             num_inference_steps=steps)
        session.step(0)  # warm-up
        begin = time.perf_counter()
        for i in range(frames):
            session.step(i % pipe.num_actions)
    return frames / (time.perf_counter() - begin)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="genie-platformer-64")
    parser.add_argument("--clips", type=int, default=16)
    args = parser.parse_args(argv or [])
    torch.set_num_threads(2)
    pipe = load(args.name)
    held_out = record_episodes(PlatformerEnv(), 8, policy=ExplorationPolicy(7), max_steps=40, seed=2_000_000,
                               progress=False)
    reference = None
    print(f"{args.name}, {torch.get_num_threads()} threads, 64x64")
    print("| MaskGIT steps | dtype | frames/s | 16-frame PSNR (dB) | vs 25 steps (dB) |")
    print("|---|---|---|---|---|")
    for steps in (25, 8, 4, 2, 1):
        for dtype in (torch.float32, torch.bfloat16):
            fps = frames_per_second(pipe, steps, dtype=dtype)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                real, inferred, _ = rollout_psnr(pipe, held_out, frames=16, count=args.clips, steps=steps)
            value = psnr(inferred[:, 1:].float(), real[:, 1:]).clamp(max=PSNR_CAP).mean().item()  # as the card
            reference = value if reference is None else reference
            name = "bf16" if dtype == torch.bfloat16 else "fp32"
            print(f"| {steps} | {name} | {fps:.1f} | {value:.2f} | {value - reference:+.2f} |", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
