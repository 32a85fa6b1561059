"""DINO-WM: seconds per plan on this CPU, CEM (300 samples x 30 iterations, horizon 5, as one batch per
iteration) and gradient descent (100 iterations), and the share of the time spent in the encoder vs the
predictor. Target: <= 10 s per CEM plan for the shipped models.

    python -m benchmarks dino_wm                      # as part of `make bench`
    python -m benchmarks.bench_dino_wm --name FOLDER --plans 3

Needs the shipped `dino-wm-wall` (or `--name`); without it, the table says so and stops.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks import load_or_say
from wm_hub.models.dino_wm.evaluation_dino_wm import TASK_SEED, make_env
from wm_hub.models.dino_wm.planning_dino_wm import DinoWMPlanner, make_planner


class _Timed:
    """Wraps a module's forward and adds up the seconds spent in it."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds, self._forward = 0.0, module.forward
        module.forward = self

    def __call__(self, *args, **kwargs):
        begin = time.perf_counter()
        try:
            return self._forward(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - begin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="dino-wm-wall")
    parser.add_argument("--plans", type=int, default=3, help="plans timed per planner (different tasks)")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--iterations", type=int, nargs=2, default=[30, 100], metavar=("CEM", "GD"))
    args = parser.parse_args(argv or [])
    torch.set_num_threads(2)
    model = load_or_say(args.name)
    if model is None:
        return
    env = make_env(model)
    print(f"{args.name}, {torch.get_num_threads()} threads, {model.config.num_patches} patches per frame, "
          f"history {model.config.history}")
    print("| planner | settings | seconds per plan | encoder share | predictor share |")
    print("|---|---|---|---|---|")
    settings = {"cem": {"num_samples": args.samples, "topk": max(1, args.samples // 10),
                        "iterations": args.iterations[0]},
                "gd": {"iterations": args.iterations[1]}}
    for name, knobs in settings.items():
        encoder, predictor = _Timed(model.encoder), _Timed(model.predictor)
        planner = DinoWMPlanner(model, make_planner(name, **knobs))
        begin = time.perf_counter()
        for i in range(args.plans):
            task = env.sample_task(TASK_SEED + i)
            goal = env.goal_image(task)
            observation, info = env.reset_to_task(task)
            planner.plan(observation, goal, info["proprio"], task["goal_proprio"], torch.Generator().manual_seed(i))
        total = time.perf_counter() - begin
        del model.encoder.forward, model.predictor.forward  # back to the class's forward
        described = ", ".join(f"{k} {v}" for k, v in knobs.items())
        print(f"| {name.upper()} | {described} | {total / args.plans:.2f} | {encoder.seconds / total:.0%} | "
              f"{predictor.seconds / total:.0%} |", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
