"""Evaluation of World Models agents (the numbers on their cards, `wm-hub eval <name> --episodes N`), the pictures
(V's reconstructions beside the real frames, a dream decoded to frames) and the card writer."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from wm_hub.cards import Metric
from wm_hub.data.clips import tensor_to_frames, write_gif
from wm_hub.metrics import psnr, random_returns
from wm_hub.models.world_models.modeling_world_models import preprocess_frames
from wm_hub.models.world_models.pipeline_world_models import CONTROLLERS, WorldModelsAgent

EVAL_SEED = 1_000_000  # held-out tracks: training uses reset seeds below it
NEEDS_DATA = False  # `wm-hub eval` plays episodes in the agent's environment

CARD_USAGE = """import gymnasium as gym
import torch
from wm_hub import WorldModelsAgent

agent = WorldModelsAgent.from_pretrained("{name}")
env = gym.make("{env_id}")
episodes = agent.play(env, episodes=2, seed=1_000_000, generator=torch.Generator().manual_seed(0))
print([e["return"] for e in episodes])
frame, _ = env.reset(seed=0)
dream = agent(frame, num_steps=100)  # C acting inside M's dream, decoded by V
print(dream.frames.shape)  # (1, 101, 64, 64, 3)"""


def agent_env(agent: WorldModelsAgent) -> gym.Env:
    if not agent.env_id:
        raise ValueError("this agent's controllers name no env_id; pass your env to agent.play")
    return gym.make(agent.env_id)


@torch.no_grad()
def reconstruction_psnr(agent: WorldModelsAgent, frames: np.ndarray) -> float:
    """V's mean reconstruction PSNR (dB, from the posterior mean) over raw frames `(N, H, W, 3)`."""
    x = agent.vae.preprocess(frames)
    mu, _ = agent.vae.encode(x)
    return float(psnr(agent.vae.decode(mu), x).mean())


def evaluate(model: WorldModelsAgent, data: str | None = None, count: int = 20) -> list[Metric]:
    """Mean and standard deviation of the return over `count` held-out tracks (seeds 1000000+) for each controller
    the agent has (trained in the real env; trained in the dream), beside uniformly random actions, and V's
    reconstruction PSNR on frames of those episodes. `data` is unused: the agent is evaluated in its env."""
    if not isinstance(model, WorldModelsAgent):
        raise ValueError(f"expected a WorldModelsAgent, got {type(model).__name__}")
    env = agent_env(model)
    metrics, frames = [], []
    for which in CONTROLLERS:
        if getattr(model, which) is None:
            continue
        episodes = model.play(env, count, EVAL_SEED, which, torch.Generator().manual_seed(0), record=True)
        returns = [e["return"] for e in episodes]
        frames += [e["frames"][::50] for e in episodes]
        label = "controller trained in the real env" if which == "controller" else "controller trained in the dream"
        metrics += [Metric(f"mean return over {count} episodes ({label})", float(np.mean(returns)), "mean_reward",
                           model.env_id),
                    Metric(f"return std over {count} episodes ({label})", float(np.std(returns)), "std_reward",
                           model.env_id)]
    baseline = random_returns(env, count, EVAL_SEED)
    metrics.append(Metric(f"mean return over {count} episodes (random actions)", float(np.mean(baseline)),
                          "mean_reward", model.env_id))
    if frames:
        metrics.append(Metric("V reconstruction PSNR on held-out frames (every 50th step)",
                              reconstruction_psnr(model, np.concatenate(frames)), "psnr", model.env_id, "dB"))
    return metrics


@torch.no_grad()
def demo(agent: WorldModelsAgent, out_dir: str | Path, name: str, steps: int = 150) -> str:
    """Play a held-out episode; write V's reconstructions beside its frames and a dream from its first frame (GIFs);
    returns a one-line summary."""
    which = next(c for c in CONTROLLERS if getattr(agent, c) is not None)
    episode = agent.play(agent_env(agent), 1, EVAL_SEED, which, torch.Generator().manual_seed(0), record=True)[0]
    real = preprocess_frames(episode["frames"][:steps], agent.vae.config)  # (T, 64, 64, 3)
    mu, _ = agent.vae.encode(agent.vae.preprocess(real))
    recon = tensor_to_frames(agent.vae.decode(mu))
    out = Path(out_dir)
    vae_gif = write_gif(np.concatenate([real, recon], axis=2), out / f"{name}-vae.gif", scale=3)
    dream = agent(episode["frames"][0], num_steps=steps, controller=which, generator=torch.Generator().manual_seed(0))
    dream_gif = write_gif(dream.frames[0], out / f"{name}-dream.gif", scale=3)
    return (f"{name}: return {episode['return']:.0f} in a held-out {agent.env_id} track ({which}); V's reconstructions "
            f"-> {vae_gif}; a {steps}-step dream -> {dream_gif}")


def write_card(folder: Path, model: WorldModelsAgent, metrics: list[Metric], command: str, training: str) -> None:
    """Write a World Models agent's model card into `folder`."""
    from wm_hub.cards import write_model_card

    v, m = model.vae.config, model.mdnrnn.config
    parts = [c for c in CONTROLLERS if getattr(model, c) is not None]
    write_model_card(
        folder, name=folder.name, family="world_models", pipeline_tag="reinforcement-learning",
        summary=(f"World Models (Ha & Schmidhuber 2018) for {model.env_id}: V, a convolutional VAE of 64 x 64 frames "
                 f"to z of {v.latent_dim}; M, an MDN-RNN (LSTM of {m.hidden_size} units, {m.gaussians} Gaussians per "
                 f"latent dimension, reward and done heads); C, linear controllers from [z, h] to the action, trained "
                 f"by CMA-ES ({', '.join(parts)})."),
        metrics=metrics, command=command,
        usage=CARD_USAGE.format(name=folder.name, env_id=model.env_id),
        dataset=model.env_id, training=training,
        limitations=("Trained and evaluated in one environment with its default settings, on a CPU budget far below "
                     "the paper's; returns are of held-out tracks (reset seeds 1000000+)."),
        config={"vae": v.to_diff_dict(), "mdnrnn": m.to_diff_dict()}, tags=["world-models", "reinforcement-learning",
                                                                             "model-based-rl", "cma-es"],
    )
