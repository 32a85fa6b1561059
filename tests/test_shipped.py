"""Every checkpoint shipped in model_cards/ loads offline through the real paths: transformers'
AutoModel for each transformers model folder, its diffusers class for a diffusers model folder (config
with `_class_name`), `wm_hub.load` for the whole, and its card reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModel, PreTrainedModel

import wm_hub
from wm_hub.hub import shipped_names
from wm_hub.modeling_utils import WorldModelPreTrainedModel

REPO = Path(__file__).resolve().parents[1]
SHIPPED = shipped_names()
MAX_WEIGHTS_BYTES = 10 * 1024 * 1024


def test_shipped_folder_is_the_source_tree():
    assert wm_hub.hub.shipped_dir() == REPO / "model_cards"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_through_auto_model(name, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    folder = REPO / "model_cards" / name
    configs = sorted(folder.rglob("config.json"))
    assert configs, f"{name} has no model folder"
    for config in configs:
        diffusers_class = json.loads(config.read_text()).get("_class_name")
        if diffusers_class is not None:  # a diffusers ModelMixin (e.g. the Cosmos tokenizers)
            model = getattr(wm_hub, diffusers_class).from_pretrained(config.parent)
            assert type(model).__name__ == diffusers_class
        else:  # a transformers model: one of ours, or a library one such as the DiT's T5 text encoder
            model = AutoModel.from_pretrained(config.parent)
            ours = type(model.config).__module__.startswith("wm_hub.")
            assert isinstance(model, WorldModelPreTrainedModel if ours else PreTrainedModel)
    for weights in folder.rglob("*.safetensors"):
        assert weights.stat().st_size <= MAX_WEIGHTS_BYTES, f"{weights} is over 10 MB"
    assert wm_hub.load(name) is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_has_measured_results(name):
    card = ModelCard.load(REPO / "model_cards" / name / "README.md")
    assert card.data.library_name == "wm_hub" and card.data.pipeline_tag
    assert card.data.eval_results, "a shipped card reports measured numbers"
    assert "Reproduce these numbers with:" in card.text
