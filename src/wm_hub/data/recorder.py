"""Record trajectories from any gymnasium env into a Hugging Face `datasets.Dataset`.

One row per observed frame, episodes back to back:

| column | type | meaning |
|---|---|---|
| `episode_index`, `step_index` | int64 | which episode, which step k in it |
| `observation` | uint8 `(H, W, C)` | frame o_k (the observation if it is an image, else `env.render()`) |
| `state` | float32 `(D,)` | the vector observation, for envs whose observation is not an image |
| `action` | int64 or float32 `(A,)` | a_k, taken at o_k (zeros on an episode's last row, where none is) |
| `reward` | float32 | reward for a_k |
| `terminated`, `truncated` | bool | whether the episode ended after a_k |
| `is_last` | bool | the episode's final frame (no action follows it) |
| `caption` | str | `info["caption"]`, for envs that describe their frames (with `episode_captions`, the
  episode's last caption on every row: a description of the whole clip) |
| `camera_pose` | float32 `(16,)` | `info["camera_pose"]`, a 4x4 camera-to-world matrix, for envs with a camera |
| *key* of `info_keys` | float32 `(D,)` | `info[key]` as a flat vector (e.g. simulator object states) |
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import datasets
import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from wm_hub.checkpoint import atomic_directory

Policy = Callable[[Any, dict], Any]
FLUSH_ROWS = 2048  # rows `record_episodes` converts to Arrow at a time (at 64x64, about 25 MB of frames)


def _is_image_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR))


def _features(env: gym.Env, frame: np.ndarray, has_state: bool, info: dict, info_keys: tuple[str, ...]
              ) -> datasets.Features:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        action = datasets.Value("int64")
    elif isinstance(space, gym.spaces.Box):
        action = datasets.Sequence(datasets.Value("float32"), length=int(np.prod(space.shape)))
    else:
        raise ValueError(f"expected a Discrete or Box action space, got {space}")
    features = {
        "episode_index": datasets.Value("int64"),
        "step_index": datasets.Value("int64"),
        "observation": datasets.Array3D(shape=frame.shape, dtype="uint8"),
        "action": action,
        "reward": datasets.Value("float32"),
        "terminated": datasets.Value("bool"),
        "truncated": datasets.Value("bool"),
        "is_last": datasets.Value("bool"),
    }
    if has_state:
        dim = int(np.prod(env.observation_space.shape))
        features["state"] = datasets.Sequence(datasets.Value("float32"), length=dim)
    if "caption" in info:
        features["caption"] = datasets.Value("string")
    if "camera_pose" in info:
        features["camera_pose"] = datasets.Sequence(datasets.Value("float32"), length=16)
    for key in info_keys:
        if key not in info:
            raise ValueError(f"info_keys names {key!r}, but the env's info has only {sorted(info)}")
        features[key] = datasets.Sequence(datasets.Value("float32"), length=int(np.size(info[key])))
    return datasets.Features(features)


def record_episodes(
    env: gym.Env | str,
    num_episodes: int,
    *,
    policy: Policy | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    env_kwargs: dict | None = None,
    info_keys: tuple[str, ...] = (),
    episode_captions: bool = False,
    progress: bool = True,
    first_episode: int = 0,
) -> datasets.Dataset:
    """Run `num_episodes` episodes and return them as a dataset (columns in the module docstring).

    `env` is an env or a gymnasium id (made with `render_mode="rgb_array"`). `policy(obs, info)`
    returns an action (a policy's `reset()`, if it has one, is called at each episode's start); by
    default actions are sampled from the action space (seeded). Episode `i` is reset with seed `seed + i`;
    `first_episode` starts at episode `first_episode` instead of 0 (a part of a longer recording, given a policy
    in the state it would be in there).
    Frames are resized to `image_size` (H, W) if given. `info_keys` names extra `info` entries to record;
    `episode_captions` gives every row its episode's final caption.
    """
    if num_episodes < 1:
        raise ValueError(f"expected num_episodes >= 1, got {num_episodes}")
    if isinstance(env, str):
        env = gym.make(env, render_mode="rgb_array", **(env_kwargs or {}))
    image_obs = _is_image_space(env.observation_space)
    if not image_obs and env.render_mode != "rgb_array":
        raise ValueError(
            f"{env} has vector observations and render_mode={env.render_mode!r}; "
            "expected render_mode='rgb_array' so frames can be recorded"
        )
    env.action_space.seed(seed)
    policy = policy or (lambda obs, info: env.action_space.sample())
    space = env.action_space
    no_action = 0 if isinstance(space, gym.spaces.Discrete) else np.zeros(space.shape, np.float32)
    columns: dict[str, list] = {}
    parts: list[datasets.Dataset] = []
    features = None

    def observe(obs: Any, info: dict) -> dict:
        nonlocal features
        frame = _resize(np.asarray(obs if image_obs else env.render(), dtype=np.uint8), image_size)
        if features is None:
            features = _features(env, frame, not image_obs, info, info_keys)
        row: dict[str, Any] = {"observation": frame}
        if not image_obs:
            row["state"] = np.asarray(obs, dtype=np.float32).reshape(-1)
        if "caption" in features:
            row["caption"] = str(info.get("caption", ""))
        if "camera_pose" in features:
            row["camera_pose"] = np.asarray(info["camera_pose"], dtype=np.float32).reshape(16)
        for key in info_keys:
            row[key] = np.asarray(info[key], dtype=np.float32).reshape(-1)
        return row

    def add(row: dict) -> None:
        for key, value in row.items():
            columns.setdefault(key, []).append(value)

    def flush() -> None:
        """Move the rows so far (whole episodes) into an Arrow table: `from_dict` converts through Python objects,
        about 15x the frames' bytes, so a long recording converts its rows a few episodes at a time."""
        if isinstance(space, gym.spaces.Box):
            columns["action"] = [np.asarray(a, dtype=np.float32).reshape(-1) for a in columns["action"]]
        if episode_captions and "caption" in columns:
            last = {e: c for e, c in zip(columns["episode_index"], columns["caption"], strict=True)}
            columns["caption"] = [last[e] for e in columns["episode_index"]]
        parts.append(datasets.Dataset.from_dict(columns, features=features))
        columns.clear()

    for episode in tqdm(range(first_episode, first_episode + num_episodes), desc="recording", disable=not progress):
        obs, info = env.reset(seed=seed + episode)
        if hasattr(policy, "reset"):  # a policy with per-episode state
            policy.reset()
        ended = False
        for step in itertools.count():
            row = {"episode_index": episode, "step_index": step, **observe(obs, info)}
            if ended or (max_steps is not None and step >= max_steps):
                add({**row, "action": no_action, "reward": 0.0, "terminated": False, "truncated": False,
                     "is_last": True})
                break
            action = policy(obs, info)
            obs, reward, terminated, truncated, info = env.step(action)
            add({**row, "action": action, "reward": float(reward), "terminated": bool(terminated),
                 "truncated": bool(truncated), "is_last": False})
            ended = terminated or truncated
        if len(columns["episode_index"]) >= FLUSH_ROWS:
            flush()
    if columns:
        flush()
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _record_part_to_disk(record_part: Callable[[int, int], datasets.Dataset], first: int, count: int, path: str
                         ) -> str:
    """Run `record_part(first, count)` in a worker and write the part to `path`: a part goes back to the parent as
    a folder, not as gigabytes through the pool's pipe."""
    record_part(first, count).save_to_disk(path)
    return path


def record_in_parts(record_part: Callable[[int, int], datasets.Dataset], num_episodes: int, workers: int = 1
                    ) -> datasets.Dataset:
    """Episodes 0 .. num_episodes - 1 recorded by `record_part(first, count)` (episodes first .. first + count - 1,
    as one long recording would have them), in `workers` processes each taking a contiguous part: the same
    dataset as one process records. `record_part` must pickle (a module function, or a `functools.partial` of
    one). Each worker writes its part to a folder in `datasets`' temporary cache directory (removed when the
    process exits); the result is their concatenation, memory-mapped from there, so the parent never holds the
    frames in memory. A worker that dies (e.g. out of memory) raises `BrokenProcessPool` instead of leaving the
    recording waiting."""
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    from datasets.fingerprint import get_temporary_cache_files_directory

    if num_episodes < 1 or workers < 1:
        raise ValueError(f"expected num_episodes >= 1 and workers >= 1, got {num_episodes}, {workers}")
    workers = min(workers, num_episodes)
    bounds = np.linspace(0, num_episodes, workers + 1).round().astype(int)
    parts = [(int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        return record_part(*parts[0])
    tmp = tempfile.mkdtemp(prefix="wm-hub-parts-", dir=get_temporary_cache_files_directory())
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        paths = pool.map(partial(_record_part_to_disk, record_part), *zip(*parts, strict=True),
                         [os.path.join(tmp, str(i)) for i in range(workers)])
        return datasets.concatenate_datasets([datasets.load_from_disk(p) for p in paths])


def save_dataset(dataset: datasets.Dataset, path: str | os.PathLike) -> None:
    """Write `dataset` to `path` (`Dataset.save_to_disk`) through a temporary folder and a rename."""
    with atomic_directory(path, replace=True) as tmp:
        dataset.save_to_disk(str(tmp))


def load_dataset_dir(path: str | os.PathLike) -> datasets.Dataset:
    """Load a dataset written by `save_dataset`, with an error that says how to make one."""
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"no dataset at {path}: expected a folder written by save_dataset; make one with `wm-hub data make ...`"
        )
    return datasets.load_from_disk(str(path))
