"""Base class of wm_hub's diffusers models (`ModelMixin` + `ConfigMixin`): Hub-aware, checked
loading and atomic saving, like `WorldModelPreTrainedModel` for transformers models."""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers import ModelMixin

from wm_hub.checkpoint import CONFIG_NAME, CheckpointError, read_json, save_via_temp_dir, weight_files
from wm_hub.hub import resolve_from_kwargs

DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


class WorldModelMixin(ModelMixin):
    """A diffusers `ModelMixin` whose `from_pretrained` accepts a folder, a shipped name or a Hub repo id,
    checks the folder holds this class (`_class_name` in `config.json`) and whole safetensors weights
    before reading any, and loads in float32 unless told otherwise. Saving goes through a temporary
    folder and a rename."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        folder = resolve_from_kwargs(pretrained_model_name_or_path, kwargs)
        if kwargs.get("subfolder"):
            folder = folder / kwargs.pop("subfolder")
        found = read_json(folder / CONFIG_NAME, f"the config of a {cls.__name__}").get("_class_name")
        if found != cls.__name__:
            raise CheckpointError(f"{folder} holds a {found!r} checkpoint, but {cls.__name__} loads {cls.__name__!r}")
        weight_files(folder, DIFFUSERS_WEIGHTS_NAME)
        kwargs["use_safetensors"] = True
        kwargs.setdefault("torch_dtype", torch.float32)
        return super().from_pretrained(folder, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        save_via_temp_dir(super().save_pretrained, save_directory, **{**kwargs, "safe_serialization": True})
