"""World Models speed on this CPU: rollouts in the real env (V, M and C acting in CarRacing), rollouts in M's dream
(a whole CMA-ES population at once), and one CMA-ES generation in the real env with 1 and 2 worker processes.

    python -m benchmarks world_models
    python benchmarks/bench_world_models.py --steps 200 --popsize 8 --workers 1 2

The parts have the paper's sizes (z 32, LSTM 256, 5 Gaussians) and untrained weights: speed does not depend on them,
only episode lengths do, so every episode here runs `--steps` steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from wm_hub.models.world_models.configuration_world_models import ControllerConfig, ConvVAEConfig, MDNRNNConfig
from wm_hub.models.world_models.evolution_world_models import EnvFitness, dream_returns
from wm_hub.models.world_models.modeling_world_models import MDNRNN, Controller, ConvVAE
from wm_hub.models.world_models.pipeline_world_models import WorldModelsAgent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="CarRacing-v3")
    parser.add_argument("--steps", type=int, default=1000, help="steps of every episode and dream rollout")
    parser.add_argument("--episodes", type=int, default=2, help="timed real-env episodes")
    parser.add_argument("--popsize", type=int, default=8, help="CMA-ES population of the timed generation")
    parser.add_argument("--dream-batch", type=int, nargs=2, default=[64, 16], metavar=("POPSIZE", "ROLLOUTS"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv or [])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    env_kwargs = {"max_episode_steps": args.steps}
    env = gym.make(args.env, **env_kwargs)
    vae = ConvVAE(ConvVAEConfig(frame_crop=(0, 84, 0, 96)))
    mdnrnn = MDNRNN(MDNRNNConfig(action_dim=env.action_space.shape[0]))
    controller = Controller(ControllerConfig(action_dim=env.action_space.shape[0], env_id=args.env)).eval()
    flat = np.random.default_rng(0).normal(0, 0.1, controller.config.num_parameters_flat)
    controller.load_flat_parameters(flat)
    agent = WorldModelsAgent(vae, mdnrnn, controller)
    print(f"{args.env}, episodes and dream rollouts of {args.steps} steps, paper-size V and M, 1 thread per process")
    print("| what | setting | steps/s | rollouts/s | seconds |")
    print("|---|---|---|---|---|")

    # 1. Real env: the agent acting (env step, V encode, C, M step)
    begin = time.perf_counter()
    steps = sum(e["length"] for e in agent.play(env, args.episodes, seed=0, generator=torch.Generator()))
    seconds = time.perf_counter() - begin
    print(f"| real env | 1 process | {steps / seconds:.0f} | {args.episodes / seconds:.3f} | {seconds:.1f} |",
          flush=True)

    # 2. Dream: P candidates x N rollouts stepping together in M
    P, N = args.dream_batch
    candidates = np.random.default_rng(1).normal(0, 0.1, (P, flat.size))
    begin = time.perf_counter()
    dream_returns(mdnrnn, controller, candidates, torch.randn(N, vae.config.latent_dim), args.steps, 1.0,
                  torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - begin
    print(f"| dream | {P} x {N} rollouts together | {P * N * args.steps / seconds:.0f} | {P * N / seconds:.1f} | "
          f"{seconds:.1f} |", flush=True)

    # 3. One CMA-ES generation in the real env (popsize candidates, one episode each)
    with tempfile.TemporaryDirectory() as tmp:
        vae.save_pretrained(Path(tmp) / "vae")
        mdnrnn.save_pretrained(Path(tmp) / "mdnrnn")
        for workers in args.workers:
            fitness = EnvFitness(Path(tmp) / "vae", Path(tmp) / "mdnrnn", controller.config, args.env, rollouts=1,
                                 workers=workers, env_kwargs=env_kwargs)
            population = np.random.default_rng(2).normal(0, 0.1, (args.popsize, flat.size))
            begin = time.perf_counter()
            fitness(population, seed=0, full_episodes=True)
            seconds = time.perf_counter() - begin
            fitness.close()
            print(f"| CMA-ES generation, real env | popsize {args.popsize}, {workers} worker(s) | "
                  f"{args.popsize * args.steps / seconds:.0f} | {args.popsize / seconds:.3f} | {seconds:.1f} |",
                  flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
