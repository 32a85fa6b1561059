"""Train a DreamerV3 agent in a gymnasium environment: act, replay, learn the world model, learn the actor-critic
in imagination.

    accelerate launch training/train_dreamer.py --env CartPole-v1
    accelerate launch training/train_dreamer.py --env Acrobot-v1 --pixels 64 --preset size1m
    accelerate launch training/train_dreamer.py --env CartPole-v1 --resume      # goes on from its checkpoint

Settings come from the config's `defaults`, then its section for the env (`envs.<id>`, and `envs.<id>@pixels`
for pixel observations), then the command line. `train_ratio` is replayed steps per environment step: each
update trains on `batch_size` x `batch_length` steps, so it runs every batch_size * batch_length / train_ratio
environment steps, after `prefill` steps of random actions. Episode returns go to `<output_dir>/episodes.csv`,
losses to `<output_dir>/log.csv`; `<output_dir>/checkpoint` (weights, optimiser, counters; safetensors + JSON)
and `<output_dir>/replay` (the replay buffer) are rewritten every `save_every` environment steps; at the end
`<output_dir>/model` is a Hub-ready folder. With several processes (`accelerate launch --num_processes N`),
each runs its own environments and replay buffer and the gradients are averaged.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from wm_hub.models.dreamer.configuration_dreamer import DreamerConfig
from wm_hub.models.dreamer.environment_dreamer import (
    action_to_env,
    make_env,
    obs_to_model,
    obs_to_tensor,
    space_config,
)
from wm_hub.models.dreamer.learner_dreamer import DreamerLearner
from wm_hub.models.dreamer.modeling_dreamer import DreamerAgent
from wm_hub.models.dreamer.replay_dreamer import ReplayBuffer
from wm_hub.trainer import (
    STATE_META,
    append_csv,
    check_settings,
    load_training_state,
    load_yaml,
    save_training_state,
)

# Settings a resumed run may change; any other difference from the checkpoint's run is refused.
RESUMABLE_CHANGES = {"steps", "log_every", "save_every", "output_dir"}


@dataclass
class DreamerRun:
    """One training run: the environment, the model (a preset plus config overrides) and the optimisation."""

    env_id: str = "CartPole-v1"
    pixels: int = 0  # > 0: observe rendered frames at this size
    preset: str = "size1m"
    model: dict[str, Any] = field(default_factory=dict)
    output_dir: str = "outputs/dreamer/run"
    steps: int = 100_000  # environment steps, all processes and environments together
    envs: int = 1  # environments per process
    train_ratio: float = 512.0
    batch_size: int = 16
    batch_length: int = 64
    replay_size: int = 1_000_000
    prefill: int = 1000  # random-action steps before learning starts
    # Optimisers (paper: Adam, world model lr 1e-4 eps 1e-8 clip 1000; actor and critic lr 3e-5 eps 1e-5 clip 100)
    model_lr: float = 1e-4
    model_eps: float = 1e-8
    model_clip: float = 1000.0
    ac_lr: float = 3e-5
    ac_eps: float = 1e-5
    ac_clip: float = 100.0
    critic_lr: float | None = None  # None: ac_lr
    log_every: int = 1000
    save_every: int = 10_000
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DreamerRun:
        check_settings(cls, values, "run settings")
        return cls(**values)


def resolve_run(config: dict[str, Any], args: argparse.Namespace) -> DreamerRun:
    """Defaults, then the env's section of the config, then the command line."""
    section = f"{args.env}@pixels" if args.pixels else args.env
    values = {**config.get("defaults", {}), **config.get("envs", {}).get(section, {})}
    values.update({"env_id": args.env, "pixels": args.pixels or 0})
    for key in ("preset", "steps", "output_dir", "train_ratio", "envs", "seed"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    values.setdefault("output_dir", f"outputs/dreamer/{args.env.lower().replace('/', '-')}"
                                    f"{'-pixels' if args.pixels else ''}")
    return DreamerRun.from_dict(values)


def check_resumable(saved: dict[str, Any], run: DreamerRun) -> None:
    """Refuse to resume a checkpoint of another run, naming the settings that differ."""
    current = asdict(run)
    differ = sorted(k for k in set(saved) | set(current)
                    if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if differ:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in differ)
        raise ValueError(f"the checkpoint is of another run configuration ({detail}); use another --output-dir "
                         "or the checkpoint's settings")


def random_actions(n: int, config: DreamerConfig, rng: np.random.Generator) -> torch.Tensor:
    """Uniform random actions in the agent's format `(n, A)` (one-hot, or in [-1, 1])."""
    if config.discrete_actions:
        return torch.nn.functional.one_hot(torch.from_numpy(rng.integers(0, config.action_dim, n)),
                                           config.action_dim).float()
    return torch.from_numpy(rng.uniform(-1, 1, (n, config.action_dim)).astype(np.float32))


def write_run_card(folder: Path, agent: DreamerAgent, run: DreamerRun, argv: list[str]) -> None:
    """The card of a run's output: the mean training return of its last 20 episodes (`episodes.csv`)."""
    from wm_hub.cards import Metric, write_model_card

    with (Path(run.output_dir) / "episodes.csv").open() as f:
        returns = [float(r["return"]) for r in csv.DictReader(f)][-20:]
    write_model_card(
        folder, name=f"dreamer-{run.env_id}", family="dreamer", pipeline_tag="reinforcement-learning",
        summary=f"DreamerV3 agent trained on {run.env_id} (preset {run.preset}); a training snapshot.",
        metrics=[Metric("mean training return, last 20 episodes", float(np.mean(returns)), "mean_reward",
                        run.env_id)],
        command=" ".join(["accelerate launch training/train_dreamer.py", *argv]),
        usage=f"from wm_hub import DreamerAgent\nagent = DreamerAgent.from_pretrained('{folder}')",
        dataset=run.env_id, training=f"{run.steps} environment steps, train ratio {run.train_ratio}; "
                                     f"returns in {run.output_dir}/episodes.csv.",
        limitations="Returns of the training episodes (sampled actions); `wm-hub eval` measures held-out ones.",
        config=agent.config.to_dict(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="gymnasium id, e.g. CartPole-v1")
    parser.add_argument("--pixels", type=int, default=None, help="observe rendered frames at this size (e.g. 64)")
    parser.add_argument("--preset", default=None, help="model size: size1m, size12m, ... (DreamerConfig PRESETS)")
    parser.add_argument("--steps", type=int, default=None, help="environment steps in all")
    parser.add_argument("--train-ratio", dest="train_ratio", type=float, default=None)
    parser.add_argument("--envs", type=int, default=None, help="environments per process")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output-dir", dest="output_dir", default=None)
    parser.add_argument("--config", default="training/configs/dreamer.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoint")
    args = parser.parse_args(argv)
    run = resolve_run(load_yaml(args.config), args)
    state = PartialState()
    out = Path(run.output_dir)
    torch.manual_seed(run.seed)
    rng = np.random.default_rng([run.seed, state.process_index])

    # 1. Environments and agent
    envs = [make_env(run.env_id, run.pixels) for _ in range(run.envs)]
    spaces = space_config(envs[0].observation_space, envs[0].action_space)
    config = DreamerConfig.from_preset(run.preset, **{**run.model, **spaces, "env_id": run.env_id})
    agent = DreamerAgent(config).to(state.device)
    learner = DreamerLearner(agent, model_lr=run.model_lr, model_eps=run.model_eps, model_clip=run.model_clip,
                             ac_lr=run.ac_lr, ac_eps=run.ac_eps, ac_clip=run.ac_clip, critic_lr=run.critic_lr)
    replay = ReplayBuffer(run.replay_size // state.num_processes, tuple(config.obs_shape), config.action_dim,
                          run.envs, np.uint8 if config.is_image else np.float32)

    # 2. Resume
    env_steps = 0
    if args.resume and (out / "checkpoint" / STATE_META).is_file():
        check_resumable(json.loads((out / "checkpoint" / STATE_META).read_text())["config"], run)
        env_steps = load_training_state(out / "checkpoint", agent, learner.optimizer, learner.scheduler)
        replay.load(out / "replay" / f"process-{state.process_index}")
        state.print(f"resumed from {out / 'checkpoint'} at {env_steps} environment steps, {len(replay)} replayed")
    elif args.resume:
        state.print(f"no checkpoint in {out / 'checkpoint'}: starting from scratch")
    out.mkdir(parents=True, exist_ok=True)
    per_update = run.batch_size * run.batch_length / run.train_ratio  # environment steps per update
    updates = int(max(0, env_steps - run.prefill) / per_update)
    step_size = run.envs * state.num_processes

    # 3. Act, store, learn
    # reset seeds: run seed 0 uses 0, 1, ... (process p from p * 10000), seed s >= 1 starts at s * 10**7, so training
    # never meets the held-out seeds 1000000+ that `wm-hub eval` plays
    seeds = iter(range(run.seed * 10_000_000 + state.process_index * 10_000, 10**10))
    obs = [e.reset(seed=next(seeds))[0] for e in envs]
    prev_action = torch.zeros(run.envs, config.action_dim)
    reward = np.zeros(run.envs, np.float32)
    is_first, is_terminal = np.ones(run.envs, bool), np.zeros(run.envs, bool)
    done = np.zeros(run.envs, bool)
    returns, lengths = np.zeros(run.envs), np.zeros(run.envs, int)
    acting = agent.reset(run.envs)
    logs: list[dict[str, float]] = []
    recent: list[float] = []
    start_time, start_steps = time.time(), env_steps
    bar = tqdm(total=run.steps, initial=env_steps, desc=out.name, disable=not state.is_main_process)
    while env_steps < run.steps:
        stored = obs_to_model(np.stack(obs), config)
        replay.add(stored, prev_action.numpy(), reward, is_first, is_terminal)
        if env_steps < run.prefill:
            action = random_actions(run.envs, config, rng)
        else:
            acting["first"] = torch.from_numpy(is_first).to(state.device)
            action, acting = agent.act(obs_to_tensor(stored, config).to(state.device), acting)
            action = action.cpu()
        for i, env in enumerate(envs):
            if done[i]:  # the terminal observation is stored: start the next episode
                if state.is_main_process:
                    append_csv(out / "episodes.csv", {"env_steps": env_steps, "return": returns[i],
                                                      "length": lengths[i]})
                recent.append(float(returns[i]))
                obs[i], reward[i], done[i] = envs[i].reset(seed=next(seeds))[0], 0.0, False
                is_first[i], is_terminal[i], returns[i], lengths[i] = True, False, 0.0, 0
                prev_action[i] = 0
                continue
            obs[i], r, terminated, truncated, _ = env.step(action_to_env(action[i], env.action_space))
            reward[i], is_first[i], is_terminal[i], done[i] = r, False, terminated, terminated or truncated
            returns[i] += r
            lengths[i] += 1
            prev_action[i] = action[i]
        env_steps += step_size
        bar.update(step_size)
        while env_steps >= run.prefill and updates < (env_steps - run.prefill) / per_update:
            logs.append(learner.update(replay.sample(run.batch_size, run.batch_length, rng), state))
            updates += 1
        if env_steps % run.log_every < step_size and logs:
            row = {"env_steps": env_steps, "updates": updates, "episodes": len(recent),
                   "return": float(np.mean(recent[-10:])) if recent else float("nan"),
                   **{k: float(np.mean([log[k] for log in logs])) for k in logs[0]},
                   "env_steps_per_s": (env_steps - start_steps) / (time.time() - start_time)}
            if state.is_main_process:
                append_csv(out / "log.csv", row)
            bar.set_postfix(ret=f"{row['return']:.1f}", upd=updates)
            logs = []
        if env_steps % run.save_every < step_size or env_steps >= run.steps:
            replay.save(out / "replay" / f"process-{state.process_index}")
            state.wait_for_everyone()
            if state.is_main_process:
                save_training_state(out / "checkpoint", agent, learner.optimizer, learner.scheduler, env_steps, run)
    bar.close()

    # 4. The Hub-ready folder
    if state.is_main_process:
        agent.save_pretrained(out / "model")
        write_run_card(out / "model", agent, run, sys.argv[1:] if argv is None else argv)
        print(f"wrote {out / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
