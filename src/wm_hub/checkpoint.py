"""Checkpoint folders on disk: safetensors only, atomic writes, clear errors for bad folders.

A checkpoint folder is what `save_pretrained` writes: `config.json` (or `model_index.json` for a
pipeline) plus `model.safetensors` (or a sharded `model.safetensors.index.json`). Nothing here
imports torch, so the resolver and `wm-hub list` stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "diffusion_pytorch_model.bin")


class CheckpointError(OSError):
    """A folder that is not a loadable wm_hub checkpoint (missing, corrupt, or of another family)."""


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target` to write; on success it replaces `target` in one rename, so no
    reader sees a half-written file. If the body raises, the temporary file is removed and `target` untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success, move what was written into `target`.

    A new `target` appears in one rename. An existing `target` is swapped whole if `replace`, else each
    written entry is moved into it with one `os.replace` (a replaced sub-folder is swapped, then the
    old one removed) and its other files stay, so no reader ever sees a half-written file. If the body
    raises, the temporary folder is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _default_permissions(tmp)
        if not target.exists():
            os.replace(tmp, target)
            return
        if not target.is_dir():
            raise NotADirectoryError(f"cannot save into {target}: it exists and is not a folder")
        for entry, dest in [(tmp, target)] if replace else [(e, target / e.name) for e in sorted(tmp.iterdir())]:
            if dest.is_dir() and not dest.is_symlink():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
                os.replace(entry, dest)
                shutil.rmtree(old)
            else:
                os.replace(entry, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_via_temp_dir(save: Callable[..., None], save_directory: str | os.PathLike, **kwargs: Any) -> None:
    """Run a `save_pretrained` (`save(folder, **kwargs)`) into a temporary folder, then move it into
    `save_directory` (`atomic_directory`). Only the main process saves; pushing is refused here."""
    if kwargs.get("push_to_hub"):
        raise ValueError("save_pretrained(push_to_hub=True) is not supported; use wm_hub.push or model.push_to_hub")
    if not kwargs.get("is_main_process", True):
        return
    with atomic_directory(save_directory) as tmp:
        save(tmp, **kwargs)


def _default_permissions(root: Path) -> None:
    """Give a folder made with mkdtemp (0700) and its files the permissions a plain mkdir/open would."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def read_json(path: Path, what: str) -> dict:
    """Read a JSON object from `path`, raising `CheckpointError` that names `what` was expected."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent} has no {path.name}: expected {what}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); expected {what}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a JSON object ({what})")
    return data


def check_model_type(folder: str | os.PathLike, expected: str, class_name: str) -> dict:
    """Return the folder's config dict after checking its `model_type` is `expected`.

    Raises `CheckpointError` naming the family found and the class that can load it.
    """
    config = read_json(Path(folder) / CONFIG_NAME, f"the config of a {expected!r} checkpoint")
    found = config.get("model_type")
    if found != expected:
        hint = f" (saved by {config['architectures'][0]})" if config.get("architectures") else ""
        raise CheckpointError(
            f"{folder} holds a {found!r} checkpoint{hint}, but {class_name} loads {expected!r} "
            f"checkpoints; load it with transformers.AutoModel or the class of its own family"
        )
    return config


def weight_files(folder: str | os.PathLike, weights_name: str = WEIGHTS_NAME) -> list[Path]:
    """List the safetensors files of a checkpoint folder after checking each one's header and size.

    Raises `CheckpointError` if there are none (or only pickle files, which we never load), or if a
    file is truncated or not safetensors.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    index = folder / weights_name.replace(".safetensors", ".safetensors.index.json")
    if (folder / weights_name).is_file():
        files = [folder / weights_name]
    elif index.is_file():
        weight_map = read_json(index, "a safetensors shard index").get("weight_map", {})
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        pickles = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
        extra = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise CheckpointError(f"{folder} has no {weights_name}{extra}; expected safetensors weights")
    for file in files:
        if not file.is_file():
            raise CheckpointError(f"{file} is missing (listed in {index.name})")
        try:
            with safe_open(file, framework="np") as handle:
                handle.keys()
        except SafetensorError as err:
            raise CheckpointError(
                f"{file} is corrupt or truncated ({err}); re-download the checkpoint or save it again"
            ) from err
    return files
