"""Serve fixed-length clips of a recorded dataset to torch."""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from wm_hub.checkpoint import atomic_file
from wm_hub.data.recorder import load_dataset_dir


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 `(..., H, W, C)` -> float `(..., C, H, W)` in [-1, 1]."""
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()  # e.g. np.asarray(PIL image): torch wants writable memory
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames (..., H, W, C), got dtype {frames.dtype}")
    return frames.movedim(-1, -3).float().div(127.5).sub(1.0)


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """float `(..., C, H, W)` in [-1, 1] -> uint8 `(..., H, W, C)` (values outside are clipped)."""
    video = video.detach().float().add(1.0).mul(127.5).round().clamp(0, 255)
    return video.to(torch.uint8).movedim(-3, -1).cpu().numpy()


def write_gif(frames, path: str | os.PathLike, scale: int = 4, duration_ms: int = 80) -> Path:
    """Write uint8 frames `(T, H, W, C)` as a looping GIF, each pixel upscaled `scale` times, through a
    temporary file and a rename; returns the path."""
    import imageio.v3 as iio

    path = Path(path)
    big = [np.kron(np.asarray(f), np.ones((scale, scale, 1), dtype=np.uint8)) for f in frames]
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, big, extension=".gif", duration=duration_ms, loop=0)
    return path


PER_FRAME_COLUMNS = ("state", "object_states", "proprio", "agent_position", "intrinsics", "camera_pose", "seed")


class ClipDataset(Dataset):
    """Clips of `clip_len` frames, `frame_skip` steps apart, that lie within one episode.

    Each item is a dict:
    - `frames`: `(T, C, H, W)` float in [-1, 1];
    - `actions`: `(T, S, *A)`, the `S = frame_skip` actions taken from each sampled frame until the
      next one (zeros past the episode's end);
    - `rewards`: `(T, S)`;
    - `episode_index`, `start_step`: where the clip comes from;
    - `caption` (datasets with captions): the caption of the clip's first row;
    - `state`, `object_states`, `proprio`, `agent_position`, `intrinsics`, `camera_pose`, `seed` (datasets that
      have them): `(T, D)` float, at the sampled frames.
    Clip starts are `start_stride` steps apart. `in_memory` reads all frames once into one uint8 array
    (`N * H * W * 3` bytes): items then cost no per-row decoding (about 20 ms for 17 rows otherwise), which a
    GPU's training speed needs.
    """

    def __init__(
        self,
        dataset: datasets.Dataset | str | os.PathLike,
        clip_len: int,
        frame_skip: int = 1,
        start_stride: int = 1,
        in_memory: bool = False,
    ) -> None:
        if clip_len < 1 or frame_skip < 1 or start_stride < 1:
            raise ValueError(
                f"expected clip_len, frame_skip, start_stride >= 1, got {clip_len}, {frame_skip}, {start_stride}"
            )
        if not isinstance(dataset, datasets.Dataset):
            dataset = load_dataset_dir(dataset)
        self.data = dataset.with_format("numpy")
        self._frames = _frame_array(dataset) if in_memory else None
        self._rows = self.data.remove_columns("observation") if in_memory else self.data
        self.clip_len, self.frame_skip = clip_len, frame_skip
        episodes = np.asarray(self.data["episode_index"])
        # Row ranges [first, end) of each episode, in order.
        bounds = np.flatnonzero(np.diff(episodes)) + 1
        firsts, ends = np.r_[0, bounds], np.r_[bounds, len(episodes)]
        self.episode_lengths = ends - firsts  # rows of each episode, in order
        span = (clip_len - 1) * frame_skip
        starts, self._episode_end = [], []
        for first, end in zip(firsts, ends, strict=True):
            for s in range(first, end - span, start_stride):
                starts.append(s)
                self._episode_end.append(end)
        self.starts = np.asarray(starts, dtype=np.int64)
        if len(self.starts) == 0:
            raise ValueError(
                f"no episode has the {span + 1} rows a clip of {clip_len} frames with frame_skip {frame_skip} needs"
            )

    @property
    def fingerprint(self) -> str:
        """The `datasets` fingerprint of the rows (a regenerated dataset in the same folder gets a new one)."""
        return self.data._fingerprint

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        start, end = int(self.starts[index]), self._episode_end[index]
        T, S = self.clip_len, self.frame_skip
        rows = start + np.arange(T * S)
        valid = rows < end
        rows = rows.clip(max=end - 1)
        batch = self._rows[rows.tolist()]
        actions = np.asarray(batch["action"])
        actions = np.where(valid.reshape(-1, *[1] * (actions.ndim - 1)), actions, 0)
        rewards = np.where(valid, np.asarray(batch["reward"], dtype=np.float32), 0.0)
        # datasets' numpy format widens Array3D uint8 to int64; the values are 0..255.
        frames = (self._frames[rows] if self._frames is not None else np.asarray(batch["observation"], np.uint8))[::S]
        item: dict[str, torch.Tensor | str] = {
            "frames": frames_to_tensor(frames),
            "actions": torch.as_tensor(actions).reshape(T, S, *actions.shape[1:]),
            "rewards": torch.as_tensor(rewards, dtype=torch.float32).reshape(T, S),
            "episode_index": torch.as_tensor(int(np.asarray(batch["episode_index"])[0])),
            "start_step": torch.as_tensor(int(np.asarray(batch["step_index"])[0])),
        }
        if "caption" in batch:
            item["caption"] = str(batch["caption"][0])
        for name in PER_FRAME_COLUMNS:
            if name in batch:
                item[name] = torch.as_tensor(np.asarray(batch[name], dtype=np.float32)[::S]).reshape(T, -1)
        return item


def _frame_array(dataset: datasets.Dataset) -> np.ndarray:
    """The `observation` column as one uint8 array `(N, H, W, C)`, flattened from Arrow without per-row decoding."""
    import pyarrow as pa

    if dataset._indices is not None:  # a selection or shuffle: its rows are not the table's
        dataset = dataset.flatten_indices()
    shape = dataset.features["observation"].shape
    parts = []
    for chunk in dataset.data.column("observation").chunks:
        values = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
        while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
            values = values.flatten()
        parts.append(values.to_numpy(zero_copy_only=False).astype(np.uint8, copy=False))
    return np.concatenate(parts).reshape(len(dataset), *shape)


def sample_clips(dataset: datasets.Dataset | str | os.PathLike, clip_len: int, count: int, batch_size: int = 16,
                 seed: int = 0) -> DataLoader:
    """A loader over `count` non-overlapping clips of `clip_len` frames, drawn at random (seeded) from
    `dataset`: the evaluation sets of the model families."""
    clips = ClipDataset(dataset, clip_len=clip_len, start_stride=clip_len)
    picks = np.random.default_rng(seed).permutation(len(clips))[:count]
    return DataLoader(Subset(clips, picks.tolist()), batch_size=batch_size)


class EncodedClips(Dataset):
    """The clips of a `ClipDataset` passed once through a frozen encoder (a tokenizer's `encode`, say), for
    training a model on its output without re-encoding each epoch. Items: `latents` (the encoder's output for
    that clip), `caption` (datasets with captions) and the clip items named in `extras` (say `actions`, or
    `intrinsics` and `camera_pose`: the conditioning of a controllable model), kept as they are.

    `encode(frames)` maps a batch `(B, T, C, H, W)` to a tensor `(B, ...)`; it runs without gradients, `batch_size`
    clips at a time, on `device`. With a `cache` file (safetensors) the result is kept there, tagged with `key`
    (say, a hash of the encoder's weights and the data's name) and the clips' `fingerprint`: a later run with the
    same key on the same rows loads it; another key, or a dataset regenerated in the same folder, recomputes it.
    """

    def __init__(self, clips: ClipDataset, encode, *, batch_size: int = 16, device: str | torch.device = "cpu",
                 cache: str | os.PathLike | None = None, key: str = "", extras: tuple[str, ...] = ()) -> None:
        import json

        from safetensors import safe_open
        from safetensors.torch import save_file
        from tqdm.auto import tqdm

        stored = None
        if cache is not None and Path(cache).is_file():
            with safe_open(str(cache), "pt") as f:
                meta = f.metadata() or {}
                if (meta.get("key") == key and meta.get("fingerprint") == clips.fingerprint
                        and int(meta.get("count", -1)) == len(clips) and set(extras) <= set(f.keys())):
                    stored = ({name: f.get_tensor(name) for name in ("latents", *extras)},
                              json.loads(meta["captions"]))
        if stored is None:
            parts: dict[str, list[torch.Tensor]] = {}
            captions: list[str] = []
            with torch.no_grad():
                for batch in tqdm(DataLoader(clips, batch_size=batch_size), desc="encoding clips"):
                    parts.setdefault("latents", []).append(encode(batch["frames"].to(device)).cpu())
                    for name in extras:
                        if name not in batch:
                            raise ValueError(f"extras names {name!r}, but the clips have only {sorted(batch)}")
                        parts.setdefault(name, []).append(batch[name])
                    captions.extend(batch.get("caption", [""] * len(batch["frames"])))
            stored = {name: torch.cat(p) for name, p in parts.items()}, captions
            if cache is not None:
                with atomic_file(cache) as tmp:
                    save_file({name: t.contiguous() for name, t in stored[0].items()}, str(tmp),
                              metadata={"key": key, "fingerprint": clips.fingerprint, "count": str(len(clips)),
                                        "captions": json.dumps(captions)})
        tensors, self.captions = stored
        self.latents = tensors["latents"]
        self.extras = {name: tensors[name] for name in extras}
        self.has_captions = "caption" in clips.data.column_names

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item: dict[str, torch.Tensor | str] = {"latents": self.latents[index]}
        item.update((name, tensor[index]) for name, tensor in self.extras.items())
        if self.has_captions:
            item["caption"] = self.captions[index]
        return item


def encoder_key(encoder: torch.nn.Module, *parts: object) -> str:
    """A tag for `EncodedClips`' cache: a hash of the encoder's weights and of `parts` (say, the data folder and
    the clip length), so a retrained encoder or other data recomputes the encoding."""
    import hashlib

    digest = hashlib.sha256(repr(parts).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
