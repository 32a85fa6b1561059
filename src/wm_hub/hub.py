"""Where checkpoints come from: one resolver for every `from_pretrained` in wm_hub, the list of
shipped checkpoints, and `push` to the Hugging Face Hub.

A name resolves, in order, to
1. a local folder (a path that exists),
2. a checkpoint shipped with wm_hub in `model_cards/<name>/` (override the folder with
   `WM_HUB_MODEL_CARDS`),
3. a Hub repo id, fetched with `huggingface_hub.snapshot_download` (cached; honours `HF_HUB_OFFLINE`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wm_hub.checkpoint import CONFIG_NAME, CheckpointError, weight_files

CARDS_ENV = "WM_HUB_MODEL_CARDS"
PIPELINE_INDEX = "model_index.json"


class ModelNotFoundError(CheckpointError, FileNotFoundError):
    """No local folder, shipped checkpoint or reachable Hub repo matches a model name."""


def shipped_dir() -> Path:
    """The folder holding the shipped checkpoints (`model_cards/` of the source tree by default)."""
    env = os.environ.get(CARDS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "model_cards"


def shipped_names() -> list[str]:
    """Names of the shipped checkpoints: the sub-folders of `shipped_dir()` that hold a card."""
    root = shipped_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "README.md").is_file())


def resolve(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """Return the local folder of a checkpoint given a path, a shipped name or a Hub repo id.

    Raises `ModelNotFoundError` naming every place searched and how to get the model.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; expected a checkpoint folder (config.json + weights)")
    name = str(name_or_path)
    if name in shipped_names():
        return shipped_dir() / name

    searched = [
        f"1. a local folder {str(path)!r}: none (relative paths start at {Path.cwd()})",
        f"2. checkpoints shipped in {shipped_dir()}: none named {name!r} "
        f"(shipped: {', '.join(shipped_names()) or 'none'})",
    ]
    try:
        folder = snapshot_download(
            repo_id=name,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            library_name="wm_hub",
        )
    except HFValidationError as err:
        searched.append(f"3. the Hugging Face Hub: {name!r} is not a valid repo id ({err})")
        cause: Exception = err
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        offline = constants.HF_HUB_OFFLINE or local_files_only
        why = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "unreachable or no such repo"
        where = cache_dir or constants.HF_HUB_CACHE
        searched.append(f"3. the Hugging Face Hub repo {name!r}: {why}, and not in the cache {where}")
        cause = err
        if not offline:
            searched[-1] += f" ({type(err).__name__}: {str(err).splitlines()[0]})"
    else:
        return Path(folder)
    raise ModelNotFoundError(
        f"cannot find model {name!r}. Searched, in order:\n  "
        + "\n  ".join(searched)
        + "\nTo get it: pass a folder written by save_pretrained, a shipped name (see `wm-hub list`), or a "
        "Hub repo id with network access (unset HF_HUB_OFFLINE), e.g. download it once online with "
        f"`hf download {name}`."
    ) from cause


HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only")


def resolve_from_kwargs(name_or_path: str | os.PathLike, kwargs: dict[str, Any]) -> Path:
    """`resolve` for a `from_pretrained`: takes (pops) the Hub arguments out of `kwargs`."""
    return resolve(name_or_path, **{key: kwargs.pop(key) for key in HUB_KWARGS if kwargs.get(key) is not None})


def count_parameters(folder: str | os.PathLike) -> int:
    """Number of parameters in every safetensors file below `folder`, read from headers only."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(folder).rglob("*.safetensors")):
        with safe_open(file, framework="np") as handle:
            for key in handle.keys():
                n = 1
                for dim in handle.get_slice(key).get_shape():
                    n *= dim
                total += n
    return total


@dataclass
class ModelInfo:
    """One shipped checkpoint as its card describes it."""

    name: str
    family: str
    pipeline_tag: str | None
    parameters: int
    metrics: dict[str, float] = field(default_factory=dict)
    path: Path | None = None


def model_info(name_or_path: str | os.PathLike) -> ModelInfo:
    """Read a checkpoint's card (`README.md`, with `huggingface_hub.ModelCard`) into a `ModelInfo`."""
    from huggingface_hub import ModelCard

    folder = resolve(name_or_path)
    readme = folder / "README.md"
    if not readme.is_file():
        raise CheckpointError(f"{folder} has no README.md; expected a model card")
    data = ModelCard.load(readme).data
    metrics = {r.metric_name or r.metric_type: r.metric_value for r in (data.eval_results or [])}
    return ModelInfo(
        name=folder.name,
        family=data.get("wm_hub_family", "unknown"),
        pipeline_tag=data.get("pipeline_tag"),
        parameters=count_parameters(folder),
        metrics=metrics,
        path=folder,
    )


def list_models() -> list[ModelInfo]:
    """Every checkpoint shipped with wm_hub, read from its card."""
    return [model_info(shipped_dir() / name) for name in shipped_names()]


def load(name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
    """Load any wm_hub checkpoint: a pipeline folder (`model_index.json`) or a diffusers model folder
    (`_class_name` in `config.json`) with the wm_hub class it names, a transformers model folder with
    `AutoModel`. Classes outside wm_hub are never imported from a checkpoint's JSON."""
    import importlib

    from wm_hub.checkpoint import read_json

    folder = resolve(name_or_path)
    index = folder / PIPELINE_INDEX if (folder / PIPELINE_INDEX).is_file() else folder / CONFIG_NAME
    config = read_json(index, f"{PIPELINE_INDEX} or {CONFIG_NAME} of a wm_hub checkpoint")
    name = config.get("_class_name")
    if name is not None or index.name == PIPELINE_INDEX:
        cls = getattr(importlib.import_module("wm_hub"), str(name), None)
        if cls is None:
            raise CheckpointError(f"{index} names class {name!r}, which is not a wm_hub class")
        return cls.from_pretrained(folder, **kwargs)
    from transformers import AutoModel

    from wm_hub.auto import register_auto_classes

    register_auto_classes()
    weight_files(folder)
    return AutoModel.from_pretrained(folder, **kwargs)


def push(
    name_or_path: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    api: Any = None,
) -> str:
    """Upload a checkpoint folder (card, config, safetensors) to the Hub repo `repo_id`; return its URL.

    `api` defaults to `huggingface_hub.HfApi(token=token)`.
    """
    from huggingface_hub import HfApi

    folder = resolve(name_or_path)
    if not (folder / "README.md").is_file():
        raise CheckpointError(f"{folder} has no README.md: write its model card before pushing")
    if not (folder / PIPELINE_INDEX).is_file():
        weight_files(folder)
    api = api or HfApi(token=token)
    url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message or f"Upload {folder.name} with wm_hub",
        ignore_patterns=[".*", "**/.*"],
    )
    return str(url)
