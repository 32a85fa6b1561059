"""DreamerV3 on this CPU, per model-size preset: environment steps per second while acting with the policy (one
env, the world model filtering every observation), and gradient updates per second (batch 16 x 64 replayed
steps: world model, then 1024 imagined trajectories of 15 steps for the actor and critic), with fresh weights.

    python -m benchmarks dreamer                      # as part of `make bench`
    python -m benchmarks.bench_dreamer --presets size1m size12m --pixels 0 64 --updates 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wm_hub.models.dreamer.configuration_dreamer import DreamerConfig
from wm_hub.models.dreamer.environment_dreamer import make_env, run_episodes, space_config
from wm_hub.models.dreamer.learner_dreamer import DreamerLearner
from wm_hub.models.dreamer.modeling_dreamer import DreamerAgent
from wm_hub.models.dreamer.replay_dreamer import ReplayBuffer


def filled_replay(config: DreamerConfig, steps: int, rng: np.random.Generator) -> ReplayBuffer:
    """A buffer of random steps of the right shapes (the update's cost does not depend on their values)."""
    replay = ReplayBuffer(steps, tuple(config.obs_shape), config.action_dim, 1,
                          np.uint8 if config.is_image else np.float32)
    for _ in range(steps):
        shape = (1, *config.obs_shape)
        obs = rng.integers(0, 255, shape) if config.is_image else rng.normal(size=shape)
        action = np.eye(config.action_dim, dtype=np.float32)[rng.integers(config.action_dim, size=1)]
        replay.add(obs, action, np.ones(1), np.zeros(1, bool), np.zeros(1, bool))
    return replay


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--presets", nargs="+", default=["size1m", "size12m"])
    parser.add_argument("--pixels", type=int, nargs="+", default=[0, 64], help="0: vector observations")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per row (after one warm-up)")
    parser.add_argument("--episodes", type=int, default=2, help="timed acting episodes per row")
    args = parser.parse_args(argv or [])
    torch.set_num_threads(2)
    print(f"{args.env}, {torch.get_num_threads()} threads, batch 16 x 64, imagination horizon 15")
    print("| preset | observations | parameters | env steps/s (acting) | updates/s | s per update |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for pixels in args.pixels:
        env = make_env(args.env, pixels)
        spaces = space_config(env.observation_space, env.action_space)
        for preset in args.presets:
            config = DreamerConfig.from_preset(preset, **spaces, env_id=args.env)
            agent = DreamerAgent(config)
            begin = time.perf_counter()
            steps = sum(e["length"] for e in run_episodes(agent, env, args.episodes, seed=0))
            acting = steps / (time.perf_counter() - begin)
            learner = DreamerLearner(agent)
            replay = filled_replay(config, 200, rng)
            learner.update(replay.sample(16, 64, rng))  # warm-up
            begin = time.perf_counter()
            for _ in range(args.updates):
                learner.update(replay.sample(16, 64, rng))
            seconds = (time.perf_counter() - begin) / args.updates
            observed = f"{pixels}x{pixels} pixels" if pixels else "vector"
            params = sum(p.numel() for p in agent.parameters()) / 1e6
            print(f"| {preset} | {observed} | {params:.1f}M | {acting:.0f} | {1 / seconds:.2f} | {seconds:.2f} |",
                  flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
