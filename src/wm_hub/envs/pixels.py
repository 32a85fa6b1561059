"""Pixel observations for any gymnasium environment that renders: the rendered frame, resized."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 `(H, W, C)` -> uint8 `(size, size, C)` (area averaging when shrinking, bilinear otherwise)."""
    if frame.ndim != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame (H, W, C), got {frame.dtype} {frame.shape}")
    if frame.shape[:2] == (size, size):
        return frame
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    mode = "area" if min(frame.shape[:2]) >= size else "bilinear"
    x = F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


class PixelObservation(gym.ObservationWrapper):
    """Replace an environment's observation by its `rgb_array` rendering at `size` x `size`: uint8 `(size,
    size, 3)`. Make the environment with `render_mode="rgb_array"`."""

    def __init__(self, env: gym.Env, size: int = 64) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"PixelObservation needs an env made with render_mode='rgb_array', got "
                             f"{env.render_mode!r}")
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        return resize_frame(np.asarray(self.env.render())[..., :3], self.size)
