"""Base class of wm_hub's diffusers pipelines: loading through the wm_hub resolver, importing only
classes of wm_hub, diffusers and transformers named in `model_index.json`."""

from __future__ import annotations

import importlib
import os
from typing import Any

from diffusers import DiffusionPipeline

from wm_hub.checkpoint import CheckpointError, read_json
from wm_hub.hub import PIPELINE_INDEX, resolve_from_kwargs

_LIBRARIES = ("wm_hub", "diffusers", "transformers")


def _component_class(library: str, class_name: str) -> type:
    root = library.split(".")[0]
    if root not in _LIBRARIES:
        raise CheckpointError(
            f"{PIPELINE_INDEX} names {library}.{class_name}; only classes of {', '.join(_LIBRARIES)} are loaded"
        )
    component = getattr(importlib.import_module(root), class_name, None)
    if component is None:
        raise CheckpointError(f"{PIPELINE_INDEX} names {class_name}, which {root} does not have")
    return component


class WorldModelPipeline(DiffusionPipeline):
    """A `DiffusionPipeline` whose `from_pretrained` takes a folder, a shipped name or a Hub repo id and
    checks that the folder holds this pipeline before loading each component from its sub-folder."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        folder = resolve_from_kwargs(pretrained_model_name_or_path, kwargs)
        index = read_json(folder / PIPELINE_INDEX, f"the index of a {cls.__name__} folder")
        found = index.get("_class_name")
        if found != cls.__name__:
            raise CheckpointError(f"{folder} holds a {found!r} pipeline, but {cls.__name__} loads {cls.__name__!r}")
        components: dict[str, Any] = {}
        for name, spec in index.items():
            if name.startswith("_"):
                continue
            if not spec or spec[0] is None:
                components[name] = None
                continue
            component_cls = _component_class(*spec)
            if not (folder / name).is_dir():
                raise CheckpointError(f"{folder} has no {name}/ folder, which {PIPELINE_INDEX} lists")
            components[name] = component_cls.from_pretrained(folder / name, **kwargs)
        return cls(**components)
