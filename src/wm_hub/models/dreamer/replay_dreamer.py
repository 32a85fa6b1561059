"""DreamerV3's replay buffer: a ring of steps per environment, sampled as fixed-length sequences; saved as
safetensors + JSON (no pickle) so that a run resumes with its experience."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from wm_hub.checkpoint import atomic_directory

META, ARRAYS = "replay.json", "replay.safetensors"


class ReplayBuffer:
    """Steps of `num_envs` parallel environments, `capacity` in all (oldest dropped first). Each step holds the
    observation, the action taken before it (zero at an episode start), the reward received on arriving,
    `is_first` and `is_terminal`. `sample` draws `(B, T)` sequences of consecutive steps of one environment;
    a sequence may cross episode boundaries (the world model resets its state where `is_first`)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int, num_envs: int = 1,
                 obs_dtype: np.dtype | type = np.float32) -> None:
        if capacity < num_envs or num_envs < 1:
            raise ValueError(f"expected capacity >= num_envs >= 1, got {capacity}, {num_envs}")
        self.per_env = capacity // num_envs
        self.num_envs = num_envs
        n, c = num_envs, self.per_env
        self.data = {
            "obs": np.zeros((n, c, *obs_shape), dtype=obs_dtype),
            "prev_action": np.zeros((n, c, action_dim), dtype=np.float32),
            "reward": np.zeros((n, c), dtype=np.float32),
            "is_first": np.zeros((n, c), dtype=bool),
            "is_terminal": np.zeros((n, c), dtype=bool),
        }
        self.written = 0  # steps written per environment (all environments step together)

    def __len__(self) -> int:
        return min(self.written, self.per_env) * self.num_envs

    def add(self, obs: np.ndarray, prev_action: np.ndarray, reward: np.ndarray, is_first: np.ndarray,
            is_terminal: np.ndarray) -> None:
        """One step of every environment: arrays with a leading axis of `num_envs`."""
        i = self.written % self.per_env
        for key, value in (("obs", obs), ("prev_action", prev_action), ("reward", reward),
                           ("is_first", is_first), ("is_terminal", is_terminal)):
            value = np.asarray(value)
            if value.shape != self.data[key].shape[:1] + self.data[key].shape[2:]:
                raise ValueError(f"expected {key} of shape {self.data[key].shape[:1] + self.data[key].shape[2:]}, "
                                 f"got {value.shape}")
            self.data[key][:, i] = value
        self.written += 1

    def sample(self, batch_size: int, length: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """`batch_size` sequences of `length` consecutive steps: tensors `(B, T, ...)`."""
        stored = min(self.written, self.per_env)
        if stored < length:
            raise ValueError(f"the buffer holds {stored} steps per environment, fewer than a sequence of {length}")
        envs = rng.integers(0, self.num_envs, batch_size)
        oldest = self.written % self.per_env if self.written > self.per_env else 0
        offsets = rng.integers(0, stored - length + 1, batch_size)  # from the oldest step
        index = (oldest + offsets[:, None] + np.arange(length)) % self.per_env  # (B, T)
        return {k: torch.from_numpy(v[envs[:, None], index]) for k, v in self.data.items()}

    def save(self, folder: str | os.PathLike) -> None:
        """Write the stored steps to `folder` (through a temporary folder and a rename)."""
        from safetensors.numpy import save_file

        with atomic_directory(folder, replace=True) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in self.data.items()}, tmp / ARRAYS)
            (tmp / META).write_text(json.dumps({"written": self.written, "per_env": self.per_env,
                                                "num_envs": self.num_envs}))

    def load(self, folder: str | os.PathLike) -> None:
        """Restore what `save` wrote; the buffer must have the same sizes."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / META).is_file() or not (folder / ARRAYS).is_file():
            raise FileNotFoundError(f"no replay buffer in {folder} (expected {META} and {ARRAYS})")
        meta = json.loads((folder / META).read_text())
        arrays = load_file(folder / ARRAYS)
        for key, value in self.data.items():
            if key not in arrays or arrays[key].shape != value.shape or arrays[key].dtype != value.dtype:
                found = (arrays[key].shape, arrays[key].dtype) if key in arrays else "nothing"
                raise ValueError(f"replay buffer in {folder}: expected {key} {value.shape} {value.dtype}, found "
                                 f"{found}")
        self.data = arrays
        self.written = int(meta["written"])
