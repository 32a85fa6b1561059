"""Control inputs of world models fine-tuned from trained ones: layers that start at zero, so the extended model
first computes exactly what the trained one did, and the embedding of per-step actions grouped per latent frame."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def zero_init(layer: nn.Linear) -> nn.Linear:
    """Zero a layer's weight and bias (a branch that starts as nothing: adaLN-Zero, new control inputs)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def action_features(actions: Tensor, frames_per_latent: int) -> Tensor:
    """Actions `(B, T, frames_per_latent * A)` (those into each latent frame's video frames) -> `(B, T,
    frames_per_latent, 2A)`: each video frame's action beside the running sum of the actions up to it (the agent's
    displacement since frame 0, in units of `frames_per_latent` steps at full speed, so that a clip's sums stay of
    the order of the actions and no layer has to integrate velocities)."""
    B, T, _ = actions.shape
    steps = actions.reshape(B, T * frames_per_latent, -1)
    displacement = steps.cumsum(dim=1) / frames_per_latent
    return torch.cat([steps, displacement], dim=-1).view(B, T, frames_per_latent, -1)


class ActionEmbedding(nn.Sequential):
    """Actions per latent frame `(B, T, frames_per_latent * action_dim)` -> `(B, T // group, dim)`: the
    `action_features` of `group` consecutive latent frames (a DiT's temporal patch), through an MLP whose output
    layer starts at zero."""

    def __init__(self, action_dim: int, frames_per_latent: int, dim: int, group: int = 1) -> None:
        width = 2 * action_dim * frames_per_latent * group
        super().__init__(nn.Linear(width, dim), nn.SiLU(), zero_init(nn.Linear(dim, dim)))
        self.action_dim, self.frames_per_latent, self.group = action_dim, frames_per_latent, group

    def forward(self, actions: Tensor) -> Tensor:
        B, T, width = actions.shape
        if width != self.frames_per_latent * self.action_dim or T % self.group:
            raise ValueError(f"expected actions (B, T, frames_per_latent * action_dim) = (B, T, "
                             f"{self.frames_per_latent * self.action_dim}) with T a multiple of {self.group}, got "
                             f"{tuple(actions.shape)}")
        features = action_features(actions, self.frames_per_latent).reshape(B, T // self.group, -1)
        return super().forward(features)
