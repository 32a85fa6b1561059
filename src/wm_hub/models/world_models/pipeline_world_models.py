"""`WorldModelsAgent`: V, M and C together. It acts in the real environment (`play`), and, called like a diffusers
pipeline, dreams: from a prompt frame, C acts on M's sampled latents and V decodes them to frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput
from torch import Tensor

from wm_hub.models.world_models.modeling_world_models import MDNRNN, Controller, ConvVAE
from wm_hub.pipeline_utils import WorldModelPipeline, postprocess_video

CONTROLLERS = ("controller", "dream_controller")


def check_parts(vae: ConvVAE, mdnrnn: MDNRNN, controller: Controller | None) -> None:
    """Refuse parts whose sizes do not fit together, showing both sides' shapes."""
    v, m = vae.config, mdnrnn.config
    if v.latent_dim != m.latent_dim:
        raise ValueError(f"V encodes z of size {v.latent_dim} but M models z of size {m.latent_dim}")
    if controller is None:
        return
    c = controller.config
    if (c.latent_dim, c.hidden_size, c.action_dim) != (v.latent_dim, m.hidden_size, m.action_dim):
        raise ValueError(f"the controller maps [z ({c.latent_dim}), h ({c.hidden_size})] to {c.action_dim} actions, "
                         f"but V gives z of {v.latent_dim} and M has h of {m.hidden_size} and {m.action_dim} actions")


@dataclass
class WorldModelsState:
    """An agent's memory during an episode: the LSTM state (h, c), each `(1, B, hidden_size)`; C reads h."""

    lstm: tuple[Tensor, Tensor]

    @property
    def hidden(self) -> Tensor:
        """`(B, hidden_size)`."""
        return self.lstm[0][0]


@dataclass
class WorldModelsDreamOutput(BaseOutput):
    """`frames`: the decoded dream, `np` uint8 `(B, T+1, H, W, C)`, `pt` float `(B, T+1, C, H, W)` in [-1, 1] or `pil`
    lists (frame 0 is V's reconstruction of the prompt); `latents` `(B, T+1, D)`; `actions` `(B, T, A)`; `rewards`
    and `done_probs` `(B, T)` as M predicts them (empty where M has no such head)."""

    frames: np.ndarray | Tensor | list[list[PIL.Image.Image]]
    latents: Tensor
    actions: Tensor
    rewards: Tensor
    done_probs: Tensor


class WorldModelsAgent(WorldModelPipeline):
    """V (`vae`), M (`mdnrnn`), C trained in the real env (`controller`) and, optionally, C trained only inside M's
    dream (`dream_controller`). `reset` / `act` step it by hand, `play` runs episodes in a gymnasium env, and
    `agent(image, num_steps=...)` dreams a rollout from a frame."""

    model_cpu_offload_seq = "vae->mdnrnn->controller"
    _optional_components = ["controller", "dream_controller"]

    def __init__(self, vae: ConvVAE, mdnrnn: MDNRNN, controller: Controller | None = None,
                 dream_controller: Controller | None = None) -> None:
        super().__init__()
        for c in (controller, dream_controller):
            check_parts(vae, mdnrnn, c)
        self.register_modules(vae=vae, mdnrnn=mdnrnn, controller=controller, dream_controller=dream_controller)
        for module in (vae, mdnrnn, controller, dream_controller):
            if module is not None:
                module.eval()

    def get_controller(self, which: str | Controller = "controller") -> Controller:
        if isinstance(which, Controller):
            check_parts(self.vae, self.mdnrnn, which)
            return which
        if which not in CONTROLLERS:
            raise ValueError(f"expected a Controller or one of {CONTROLLERS}, got {which!r}")
        controller = getattr(self, which)
        if controller is None:
            raise ValueError(f"this agent has no {which}; it has "
                             f"{[c for c in CONTROLLERS if getattr(self, c) is not None] or 'none'}")
        return controller

    @property
    def env_id(self) -> str | None:
        return next((c.config.env_id for c in (self.controller, self.dream_controller) if c is not None), None)

    def reset(self, batch_size: int = 1) -> WorldModelsState:
        return WorldModelsState(self.mdnrnn.initial_state(batch_size))

    @torch.no_grad()
    def encode(self, frames: np.ndarray, generator: torch.Generator | None = None, sample: bool = True) -> Tensor:
        """Raw uint8 frames `(B, H, W, 3)` -> z `(B, D)`: drawn from V's posterior (as the paper's agent does), or
        its mean with `sample=False`."""
        mu, logvar = self.vae.encode(self.vae.preprocess(frames))
        if not sample:
            return mu
        return mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator, device=mu.device)

    @torch.no_grad()
    def act(self, frames: np.ndarray, state: WorldModelsState, controller: str | Controller = "controller",
            generator: torch.Generator | None = None, noise: float = 0.0) -> tuple[Tensor, WorldModelsState]:
        """Raw frames `(B, H, W, 3)` -> actions `(B, A)` within the env's bounds and the next state: a_t = C(z_t, h_t),
        plus Gaussian noise of std `noise` clipped to the bounds (exploration), then M consumes (z_t, a_t)."""
        z = self.encode(frames, generator)
        controller = self.get_controller(controller)
        action = controller(z, state.hidden)
        if noise > 0:
            c = controller.config
            low, high = (torch.tensor(v, dtype=action.dtype) for v in (c.action_low, c.action_high))
            action = torch.clamp(action + noise * torch.randn(action.shape, generator=generator), low, high)
        _, lstm = self.mdnrnn.step(z, action, state.lstm)
        return action, WorldModelsState(lstm)

    @torch.no_grad()
    def play(self, env: gym.Env, episodes: int = 1, seed: int = 0, controller: str | Controller = "controller",
             generator: torch.Generator | None = None, record: bool = False, patience: int | None = None,
             step_penalty: float = 0.0) -> list[dict[str, Any]]:
        """Run `episodes` episodes (reset seeds `seed`, `seed` + 1, ...): per episode its `return` and `length`, and
        with `record` its raw `frames` uint8 `(T, H, W, 3)` and `actions` `(T, A)`.

        For training only, `patience` ends an episode after that many steps without a positive reward and charges
        `step_penalty` for each step left of the env's time limit: the return it would have had if no more reward
        came (CarRacing: -0.1 a step once the car has left the track), at a fraction of the simulation."""
        controller = self.get_controller(controller)
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if patience is not None and limit is None:
            raise ValueError("patience needs an env with a time limit (env.spec.max_episode_steps)")
        results = []
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            state = self.reset(1)
            total, length, idle, done, frames, actions = 0.0, 0, 0, False, [], []
            while not done:
                action, state = self.act(obs[None], state, controller, generator)
                a = action[0].cpu().numpy().astype(env.action_space.dtype)
                if record:
                    frames.append(obs)
                    actions.append(a)
                obs, reward, terminated, truncated, _ = env.step(a)
                total, length, done = total + float(reward), length + 1, terminated or truncated
                idle = 0 if reward > 0 else idle + 1
                if patience is not None and idle >= patience and not done:
                    total, done = total - step_penalty * (limit - length), True
            results.append({"return": total, "length": length,
                            **({"frames": np.stack(frames), "actions": np.stack(actions)} if record else {})})
        return results

    @torch.no_grad()
    def __call__(
        self,
        image: np.ndarray,
        num_steps: int = 100,
        temperature: float | None = None,
        controller: str | Controller = "controller",
        generator: torch.Generator | None = None,
        output_type: str = "np",
    ) -> WorldModelsDreamOutput:
        """Dream `num_steps` steps from raw uint8 frame(s) `image` `(H, W, 3)` or `(B, H, W, 3)`: C acts on z_t and
        h_t, M samples z_{t+1} at `temperature` (default: M's config), V decodes every z."""
        # 1. Check inputs
        if num_steps < 1:
            raise ValueError(f"expected num_steps >= 1, got {num_steps}")
        frames = np.asarray(image)
        frames = frames[None] if frames.ndim == 3 else frames
        controller = self.get_controller(controller)
        # 2. Encode the prompt
        z = self.encode(frames, generator)  # (B, D)
        state = self.reset(z.shape[0])
        # 3. Dream loop
        latents, actions, rewards, dones = [z], [], [], []
        for _ in range(num_steps):
            action = controller(z, state.hidden)  # (B, A)
            h, lstm = self.mdnrnn.step(z, action, state.lstm)
            z, reward, done = self.mdnrnn.sample_next(h, temperature, generator)
            state = WorldModelsState(lstm)
            latents.append(z)
            actions.append(action)
            rewards += [reward] if reward is not None else []
            dones += [done] if done is not None else []
        # 4. Decode
        latents_t = torch.stack(latents, 1)  # (B, T+1, D)
        video = self.vae.decode(latents_t.flatten(0, 1)).unflatten(0, latents_t.shape[:2])  # (B, T+1, C, H, W)
        empty = z.new_zeros(z.shape[0], 0)
        return WorldModelsDreamOutput(frames=postprocess_video(video, output_type), latents=latents_t,
                                      actions=torch.stack(actions, 1),
                                      rewards=torch.stack(rewards, 1) if rewards else empty,
                                      done_probs=torch.stack(dones, 1) if dones else empty)
