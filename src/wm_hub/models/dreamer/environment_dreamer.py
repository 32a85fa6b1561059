"""What a DreamerV3 agent needs from a gymnasium environment: the spaces it supports, conversions of
observations and actions, and running episodes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from wm_hub.models.dreamer.configuration_dreamer import DreamerConfig

SUPPORTED = ("observations: Box of shape (D,) (vectors) or uint8 Box (H, W, C) (images, H = W a power of two "
             ">= 16); actions: Discrete(n) or Box of shape (A,) with finite bounds")


def make_env(env_id: str, pixels: int = 0, **kwargs: Any) -> gym.Env:
    """`gym.make(env_id)`; with `pixels` > 0, observations are its rendered frames at `pixels` x `pixels`."""
    import wm_hub.envs  # noqa: F401 - registers wm_hub's own environments

    if pixels:
        from wm_hub.envs.pixels import PixelObservation

        return PixelObservation(gym.make(env_id, render_mode="rgb_array", **kwargs), pixels)
    return gym.make(env_id, **kwargs)


def space_config(observation_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """The config fields (`obs_shape`, `action_dim`, `discrete_actions`) of an environment's spaces, or a
    `ValueError` naming the supported ones."""
    obs = observation_space
    if isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1:
        obs_shape: tuple[int, ...] = obs.shape
    elif (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 3 and obs.dtype == np.uint8
          and obs.shape[0] == obs.shape[1] and obs.shape[0] >= 16 and not obs.shape[0] & (obs.shape[0] - 1)):
        obs_shape = (obs.shape[2], obs.shape[0], obs.shape[1])
    else:
        raise ValueError(f"unsupported observation space {obs}; supported: {SUPPORTED}")
    act = action_space
    if isinstance(act, gym.spaces.Discrete):
        return {"obs_shape": obs_shape, "action_dim": int(act.n), "discrete_actions": True}
    if isinstance(act, gym.spaces.Box) and len(act.shape) == 1 and np.all(np.isfinite(act.low)) and np.all(
            np.isfinite(act.high)):
        return {"obs_shape": obs_shape, "action_dim": int(act.shape[0]), "discrete_actions": False}
    raise ValueError(f"unsupported action space {act}; supported: {SUPPORTED}")


def check_env(config: DreamerConfig, env: gym.Env) -> None:
    """Refuse an environment whose spaces differ from those the agent was built for."""
    found = space_config(env.observation_space, env.action_space)
    expected = {"obs_shape": tuple(config.obs_shape), "action_dim": config.action_dim,
                "discrete_actions": config.discrete_actions}
    if found != expected:
        raise ValueError(f"the environment has {found}, the agent expects {expected}")


def obs_to_model(obs: np.ndarray, config: DreamerConfig) -> np.ndarray:
    """Env observations `(n, D)` or uint8 `(n, H, W, C)` -> what the buffer stores: float32 `(n, D)` or uint8
    `(n, C, H, W)`."""
    obs = np.asarray(obs)
    return np.ascontiguousarray(obs.transpose(0, 3, 1, 2)) if config.is_image else obs.astype(np.float32)


def obs_to_tensor(obs: np.ndarray | torch.Tensor, config: DreamerConfig) -> torch.Tensor:
    """Stored observations -> model input: float `(..., D)` or `(..., C, H, W)` in [-1, 1]."""
    obs = torch.as_tensor(obs)
    return obs.float() / 127.5 - 1.0 if config.is_image else obs.float()


def action_to_env(action: torch.Tensor, space: gym.Space) -> Any:
    """One action `(A,)` of the agent (one-hot, or in [-1, 1]) -> the env's (an index, or within its bounds)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(action.argmax()) + int(space.start)
    a = action.detach().cpu().numpy().astype(space.dtype)
    return space.low + (a + 1.0) / 2.0 * (space.high - space.low)


@torch.no_grad()
def run_episodes(agent: Any, env: gym.Env, episodes: int, seed: int, mode: bool = False,
                 generator: torch.Generator | None = None, record: bool = False) -> list[dict[str, Any]]:
    """Play `episodes` episodes (seeds `seed`, `seed` + 1, ...): per episode its `return` and `length`, and
    with `record` its stored observations and agent actions (for pictures)."""
    config = agent.config
    check_env(config, env)
    results = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state = agent.reset(1)
        total, length, done = 0.0, 0, False
        frames, actions = [], []
        while not done:
            stored = obs_to_model(obs[None], config)
            action, state = agent.act(obs_to_tensor(stored, config), state, mode=mode, generator=generator)
            obs, reward, terminated, truncated, _ = env.step(action_to_env(action[0], env.action_space))
            total, length, done = total + float(reward), length + 1, terminated or truncated
            if record:
                frames.append(stored[0])
                actions.append(action[0])
        results.append({"return": total, "length": length, **(
            {"obs": np.stack(frames), "actions": torch.stack(actions)} if record else {})})
    return results
