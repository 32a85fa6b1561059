"""Evaluation of DreamerV3 agents (the numbers on their cards, `wm-hub eval <name> --episodes N`), the picture of
the world model's open-loop imagination beside reality, and the card writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_hub.cards import Metric
from wm_hub.data.clips import tensor_to_frames, write_gif
from wm_hub.layers.distributions import symexp
from wm_hub.metrics import random_returns
from wm_hub.models.dreamer.environment_dreamer import make_env, obs_to_tensor, run_episodes
from wm_hub.models.dreamer.modeling_dreamer import DreamerAgent

EVAL_SEED = 1_000_000  # held-out episode seeds: training resets use seeds below it (run seed 0) or from 10**7 up
NEEDS_DATA = False  # `wm-hub eval` runs episodes in the agent's environment, not a dataset

CARD_USAGE = """import torch
from wm_hub import DreamerAgent
from wm_hub.models.dreamer.environment_dreamer import run_episodes
from wm_hub.models.dreamer.evaluation_dreamer import agent_env

agent = DreamerAgent.from_pretrained("{name}")
env = agent_env(agent)  # gymnasium.make(agent.config.env_id), rendered frames for an image agent
episodes = run_episodes(agent, env, episodes=5, seed=1_000_000, generator=torch.Generator().manual_seed(0))
print([e["return"] for e in episodes])"""


def agent_env(agent: DreamerAgent):
    """The environment an agent was trained in (rendered frames for an image agent)."""
    if not agent.config.env_id:
        raise ValueError("this agent's config names no env_id; run it in your env with run_episodes")
    return make_env(agent.config.env_id, agent.config.obs_shape[1] if agent.config.is_image else 0)


def evaluate(model: DreamerAgent, data: str | None = None, count: int = 20) -> list[Metric]:
    """Mean and standard deviation of the return over `count` held-out episodes (seeds 1000000+), actions
    sampled from the policy as in training and its mode, beside uniformly random actions. `data` is unused:
    an agent is evaluated in its environment."""
    if not isinstance(model, DreamerAgent):
        raise ValueError(f"expected a DreamerAgent, got {type(model).__name__}")
    env = agent_env(model.eval())
    dataset = model.config.env_id
    metrics = []
    for label, mode in (("sampled actions", False), ("policy mode", True)):
        returns = [e["return"] for e in run_episodes(model, env, count, EVAL_SEED, mode=mode,
                                                     generator=torch.Generator().manual_seed(0))]
        metrics += [Metric(f"mean return over {count} episodes ({label})", float(np.mean(returns)), "mean_reward",
                           dataset),
                    Metric(f"return std over {count} episodes ({label})", float(np.std(returns)), "std_reward",
                           dataset)]
    baseline = random_returns(env, count, EVAL_SEED)
    metrics.append(Metric(f"mean return over {count} episodes (random actions)", float(np.mean(baseline)),
                          "mean_reward", dataset))
    return metrics


def render_state(env: Any, state: np.ndarray) -> np.ndarray:
    """A frame of a classic-control env at the given physical `state` (its `unwrapped.state`)."""
    env.unwrapped.state = np.asarray(state, dtype=np.float64)
    return np.asarray(env.render())


@torch.no_grad()
def imagination_frames(agent: DreamerAgent, context: int = 5, horizon: int = 45, seed: int = EVAL_SEED) -> np.ndarray:
    """Real frames beside the world model's open-loop prediction for the same actions: the model filters the
    first `context` observations of a held-out episode, then imagines `horizon` steps from the actions the
    agent took, decoding each. Image agents show decoded frames; vector agents of classic-control envs show
    the env rendered at the decoded state. uint8 `(T, H, 2W, 3)`."""
    config = agent.config
    env = agent_env(agent.eval())
    episode = run_episodes(agent, env, 1, seed, mode=True, record=True)[0]
    steps = min(context + horizon, len(episode["obs"]))
    if steps <= context:
        raise ValueError(f"the episode lasted {steps} steps, not more than the context of {context}")
    obs = obs_to_tensor(episode["obs"][:steps], config)[None]  # (1, T, ...)
    actions = episode["actions"][:steps]  # action taken at each observation
    prev = torch.cat([torch.zeros_like(actions[:1]), actions[:-1]])[None]
    wm = agent.world_model
    first = torch.zeros(1, context, dtype=torch.bool)
    first[:, 0] = True
    post, _ = wm.rssm.observe(wm.encoder(obs[:, :context]), prev[:, :context], first)
    state = post.map(lambda t: t[:, -1])
    features = [post.features[0]]
    for t in range(context, steps):
        state = wm.rssm.img_step(state, prev[:, t])
        features.append(state.features)
    predicted = wm.decoder(torch.cat(features))  # (T, ...)
    if config.is_image:
        real, fake = tensor_to_frames(obs[0]), tensor_to_frames(predicted.clamp(-1, 1))
    else:
        if not hasattr(env.unwrapped, "state"):
            raise ValueError(f"{config.env_id} exposes no physical state to render a vector prediction from")
        viewer = make_env(config.env_id, render_mode="rgb_array")
        viewer.reset(seed=seed)
        real = np.stack([render_state(viewer, s) for s in episode["obs"][:steps]])
        fake = np.stack([render_state(viewer, s) for s in symexp(predicted).numpy()])
    fake[:context] = fake[:context] // 2 + 64  # dimmed while the model still sees the real frames
    return np.concatenate([real, fake], axis=2)


def demo(agent: DreamerAgent, out_dir: str | Path, name: str) -> str:
    """Play a held-out episode, write the imagination-beside-reality GIF; returns a one-line summary."""
    env = agent_env(agent.eval())
    ret = run_episodes(agent, env, 1, EVAL_SEED, mode=True)[0]["return"]
    frames = imagination_frames(agent)
    path = write_gif(frames, Path(out_dir) / f"{name}-imagination.gif", scale=1 if frames.shape[1] > 128 else 4)
    return f"{name}: return {ret:.0f} in a held-out {agent.config.env_id} episode; imagination vs real -> {path}"


def write_card(folder: Path, model: DreamerAgent, metrics: list[Metric], command: str, training: str) -> None:
    """Write a DreamerV3 agent's model card into `folder`."""
    from wm_hub.cards import write_model_card

    c = model.config
    kind = "images" if c.is_image else "vectors"
    write_model_card(
        folder, name=folder.name, family="dreamer", pipeline_tag="reinforcement-learning",
        summary=(f"A DreamerV3 agent (Hafner et al. 2023) for {c.env_id} ({kind} {tuple(c.obs_shape)}, "
                 f"{'discrete' if c.discrete_actions else 'continuous'} actions of size {c.action_dim}). Its world "
                 f"model is an RSSM (block GRU of {c.deter} units in {c.blocks} blocks, {c.stoch} categorical "
                 f"latents of {c.classes} classes with 1 % uniform mix) with reward (symexp two-hot), continue and "
                 f"observation heads; the actor and critic were trained on {c.imag_horizon}-step imagined "
                 "trajectories only."),
        metrics=metrics, command=command,
        usage=CARD_USAGE.format(name=folder.name),
        dataset=c.env_id, training=training,
        limitations=("Trained and evaluated in one environment with its default settings; returns are of held-out "
                     "episode seeds (1000000+), which only change the initial state."),
        config=c.to_diff_dict(), tags=["dreamerv3", "reinforcement-learning", "model-based-rl"],
    )
