"""Base class of wm_hub's transformers models: Hub-aware, checked loading and atomic saving."""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import PreTrainedModel

from wm_hub.checkpoint import check_model_type, save_via_temp_dir, weight_files
from wm_hub.hub import resolve_from_kwargs


class WorldModelPreTrainedModel(PreTrainedModel):
    """A `PreTrainedModel` whose `from_pretrained` accepts a folder, a shipped name or a Hub repo id.

    Loading checks, before any weight is read, that the folder's `config.json` is of this class's
    family and that its safetensors files are whole; pickle weights are never loaded. Saving writes
    to a temporary folder and renames it into place.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any, **kwargs: Any):
        folder = resolve_from_kwargs(pretrained_model_name_or_path, kwargs)
        check_model_type(folder, cls.config_class.model_type, cls.__name__)
        weight_files(folder)
        kwargs["use_safetensors"] = True
        # Like diffusers: float32 unless asked otherwise, whatever dtype the weights were stored in
        # (shipped checkpoints are stored in float16 to stay small).
        kwargs.setdefault("dtype", torch.float32)
        return super().from_pretrained(folder, *model_args, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        save_via_temp_dir(super().save_pretrained, save_directory, **kwargs)
