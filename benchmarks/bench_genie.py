"""Genie: frames per second of `session.step` on this CPU at 64x64, by MaskGIT steps, temperature and
dtype, and the PSNR each setting costs against 25 steps at the config's temperature (16-frame rollouts
driven by inferred latent actions, on held-out levels).

    python -m benchmarks genie                       # as part of `make bench`
    python -m benchmarks.bench_genie --name FOLDER --clips 32
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wm_hub.data import record_episodes
from wm_hub.envs.platformer import ExplorationPolicy, PlatformerEnv
from wm_hub.hub import load
from wm_hub.metrics import psnr
from wm_hub.models.genie.evaluation_genie import PSNR_CAP, rollout_psnr
from wm_hub.models.genie.play_genie import platformer_prompts


def frames_per_second(pipe, steps: int, temperature: float | None = None, frames: int = 24, repeats: int = 3,
                      dtype: torch.dtype = torch.float32) -> float:
    """Median over `repeats` sessions of `frames` steps each (after one warm-up step): shared CPUs are noisy."""
    rates = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        for _ in range(repeats):
            session = pipe.start(platformer_prompts(1)[0], generator=torch.Generator().manual_seed(0),
                                 num_inference_steps=steps, temperature=temperature)
            session.step(0)  # warm-up
            begin = time.perf_counter()
            for i in range(frames):
                session.step(i % pipe.num_actions)
            rates.append(frames / (time.perf_counter() - begin))
    return statistics.median(rates)


STEP_COUNTS = (25, 8, 4, 2, 1)


def settings_for(config_temperature: float, steps: list[int] | None) -> list[tuple[int, float | None]]:
    """(MaskGIT steps, temperature (None: the config's)): each step count at the config's temperature, then at
    the other decoding mode (sampling at temperature 1 where the config is greedy, greedy where it samples)."""
    other = 1.0 if config_temperature == 0 else 0.0
    counts = [n for n in STEP_COUNTS if steps is None or n in steps]
    return [(n, None) for n in counts] + [(n, other) for n in counts]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="genie-platformer-64")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="only these MaskGIT step counts (the first row is the reference)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                        help="bf16 runs under autocast: faster where the CPU has bf16 instructions (AVX-512 BF16, "
                             "AMX), about 10x slower matmuls where it emulates them (AVX2 only)")
    args = parser.parse_args(argv or [])
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_num_threads(2)
    pipe = load(args.name)
    settings = settings_for(pipe.dynamics.config.maskgit_temperature, args.steps)
    held_out = record_episodes(PlatformerEnv(), 8, policy=ExplorationPolicy(7), max_steps=40, seed=2_000_000,
                               progress=False)
    reference = None
    print(f"{args.name}, {torch.get_num_threads()} threads, 64x64")
    print(f"| MaskGIT steps | temperature | dtype | frames/s | 16-frame PSNR (dB) | vs {settings[0][0]} steps (dB) |")
    print("|---|---|---|---|---|---|")
    for steps, temperature in settings:
        fps = frames_per_second(pipe, steps, temperature, dtype=dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            real, inferred, _ = rollout_psnr(pipe, held_out, frames=16, count=args.clips, steps=steps,
                                             temperature=temperature)
        value = psnr(inferred[:, 1:].float(), real[:, 1:]).clamp(max=PSNR_CAP).mean().item()  # as the card
        reference = value if reference is None else reference
        shown = pipe.dynamics.config.maskgit_temperature if temperature is None else temperature
        row = f"| {steps} | {shown:g} | {args.dtype} | {fps:.1f} | {value:.2f} | {value - reference:+.2f} |"
        print(row, flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
