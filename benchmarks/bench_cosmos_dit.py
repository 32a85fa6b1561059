"""Cosmos-style diffusion world model: seconds per generated clip on this CPU by `num_inference_steps`, and
the quality each step count keeps (Video2World PSNR over 16 frames from the first frame of held-out
scenes, against the first step count, 30 by default).

    python -m benchmarks cosmos_dit                   # as part of `make bench`
    python -m benchmarks.bench_cosmos_dit --name FOLDER --clips 8

Needs the shipped `cosmos-dit-physics-64` (or `--name`); without it, the table says so and stops.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks import load_or_say
from wm_hub.data import record_episodes
from wm_hub.envs.physics import PhysicsEnv, ScriptedPaddle
from wm_hub.metrics import psnr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="cosmos-dit-physics-64")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 15, 8, 4], help="the first is the reference")
    args = parser.parse_args(argv or [])
    torch.set_num_threads(2)
    pipe = load_or_say(args.name)
    if pipe is None:
        return
    from wm_hub.data.clips import sample_clips
    from wm_hub.models.cosmos.pipeline_cosmos import Video2WorldPipeline

    world = Video2WorldPipeline(**pipe.components)
    scenes = record_episodes(PhysicsEnv(), args.clips, policy=ScriptedPaddle(5), max_steps=16, seed=5_000_000,
                             info_keys=("object_states",), episode_captions=True, progress=False)
    batch = next(iter(sample_clips(scenes, 17, args.clips, batch_size=args.clips)))
    real = batch["frames"]
    print(f"{args.name}, {torch.get_num_threads()} threads, {args.clips} clips of 17 frames at {world.image_size}px, "
          f"guidance {world.default_guidance_scale:g}")
    print(f"| steps | seconds per clip | Video2World PSNR, 16 frames (dB) | vs {args.steps[0]} steps (dB) |")
    print("|---|---|---|---|")
    reference = None
    for steps in args.steps:
        begin = time.perf_counter()
        out = world(batch["caption"], video=real[:, :1], num_frames=17, num_inference_steps=steps,
                    generator=torch.Generator().manual_seed(0), output_type="pt").frames
        seconds = (time.perf_counter() - begin) / args.clips
        value = psnr(out[:, 1:], real[:, 1:]).mean().item()
        reference = value if reference is None else reference
        print(f"| {steps} | {seconds:.2f} | {value:.2f} | {value - reference:+.2f} |", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
