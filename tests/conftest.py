"""Shared fixtures: a tiny registered model family used to test the checkpoint machinery."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from wm_hub.auto import register_model
from wm_hub.modeling_utils import WorldModelPreTrainedModel


class TinyConfig(PretrainedConfig):
    model_type = "wm_test_tiny"

    def __init__(self, hidden_size: int = 8, **kwargs) -> None:
        self.hidden_size = hidden_size
        super().__init__(**kwargs)


class TinyModel(WorldModelPreTrainedModel):
    """x_t (B, H) and a_t (B, H) -> prediction of x_{t+1} (B, H)."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.proj = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.post_init()

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([x, a], dim=-1))


class OtherConfig(TinyConfig):
    model_type = "wm_test_other"


class OtherModel(TinyModel):
    config_class = OtherConfig


register_model(TinyModel)
register_model(OtherModel)


@pytest.fixture
def tiny_model() -> TinyModel:
    torch.manual_seed(0)
    return TinyModel(TinyConfig(hidden_size=8)).eval()


@pytest.fixture
def cards_dir(tmp_path, monkeypatch):
    """An empty shipped-checkpoints folder (WM_HUB_MODEL_CARDS points at it)."""
    root = tmp_path / "model_cards"
    root.mkdir()
    monkeypatch.setenv("WM_HUB_MODEL_CARDS", str(root))
    return root
