"""Base class of wm_hub's diffusers pipelines (loading through the wm_hub resolver, importing only
classes of wm_hub, diffusers and transformers named in `model_index.json`), and the image / video
conversions the pipelines share."""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from torch import Tensor

from wm_hub.checkpoint import CheckpointError, read_json
from wm_hub.data.clips import frames_to_tensor, tensor_to_frames
from wm_hub.hub import PIPELINE_INDEX, resolve_from_kwargs

ImageInput = PIL.Image.Image | np.ndarray | Tensor
OUTPUT_TYPES = ("np", "pt", "pil")


def preprocess_images(image: ImageInput | Sequence[ImageInput], size: int, what: str = "image") -> Tensor:
    """Image(s) -> `(B, C, size, size)` float in [-1, 1]. Accepts PIL images, uint8 arrays `(H, W, 3)` or
    `(B, H, W, 3)`, float tensors `(3, H, W)` / `(B, 3, H, W)` in [-1, 1], or a list of those. Other sizes
    are resized, with a warning naming `what`."""
    if isinstance(image, (list, tuple)):
        return torch.cat([preprocess_images(im, size, what) for im in image])
    if isinstance(image, PIL.Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise ValueError(f"expected a uint8 {what} (H, W, 3) or (B, H, W, 3), got {image.dtype} {image.shape}")
        image = frames_to_tensor(image)
    if not isinstance(image, Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"expected a PIL {what}, a uint8 array (H, W, 3) or a tensor (3, H, W), got {shape}")
    image = image.float().reshape(-1, *image.shape[-3:])
    if image.shape[-2:] != (size, size):
        warnings.warn(f"{what} of size {tuple(image.shape[-2:])} resized to ({size}, {size})", stacklevel=3)
        image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)
    return image.clamp(-1, 1)


def postprocess_video(video: Tensor, output_type: str) -> np.ndarray | Tensor | list[list[PIL.Image.Image]]:
    """`(B, T, C, H, W)` in [-1, 1] -> `pt` (as is), `np` uint8 `(B, T, H, W, C)` or `pil` lists of images."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    if output_type == "pt":
        return video
    frames = tensor_to_frames(video)
    return frames if output_type == "np" else [[PIL.Image.fromarray(f) for f in clip] for clip in frames]

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


def _float32_unless_told(component_cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Loading arguments for one component: models load in float32 unless a dtype is given, whatever dtype their
    weights were stored in (shipped folders keep float16 weights to stay small; transformers 5 would otherwise
    load them as stored)."""
    from diffusers import ModelMixin
    from transformers import PreTrainedModel

    dtype = kwargs.get("torch_dtype", kwargs.get("dtype", torch.float32))
    rest = {k: v for k, v in kwargs.items() if k not in ("torch_dtype", "dtype")}
    if issubclass(component_cls, PreTrainedModel):
        return {**rest, "dtype": dtype}
    if issubclass(component_cls, ModelMixin):
        return {**rest, "torch_dtype": dtype}
    return rest


class WorldModelPipeline(DiffusionPipeline):
    """A `DiffusionPipeline` whose `from_pretrained` takes a folder, a shipped name or a Hub repo id and
    checks that the folder holds this pipeline before loading each component from its sub-folder.
    `_shares_folders_with` names sibling pipelines whose folders (the same components) it loads too."""

    _shares_folders_with: tuple[str, ...] = ()

    def register_modules(self, **kwargs: Any) -> None:
        """As diffusers', but wm_hub components are indexed as ("wm_hub", class name): diffusers would name
        a module under a folder that shares a diffusers pipeline's name (`cosmos`) by that folder."""
        super().register_modules(**kwargs)
        ours = {name: ("wm_hub", type(module).__name__) for name, module in kwargs.items()
                if module is not None and type(module).__module__.startswith("wm_hub.")}
        self.register_to_config(**ours)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        folder = resolve_from_kwargs(pretrained_model_name_or_path, kwargs)
        index = read_json(folder / PIPELINE_INDEX, f"the index of a {cls.__name__} folder")
        found = index.get("_class_name")
        accepted = (cls.__name__, *cls._shares_folders_with)
        if found not in accepted:
            raise CheckpointError(f"{folder} holds a {found!r} pipeline, but {cls.__name__} loads "
                                  f"{' or '.join(repr(a) for a in accepted)}")
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
            components[name] = component_cls.from_pretrained(folder / name, **_float32_unless_told(component_cls,
                                                                                                   kwargs))
        return cls(**components)
