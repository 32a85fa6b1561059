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


def tiny_world_parts(num_layers: int = 2, captions: tuple[str, ...] = ("a red ball falls",)) -> dict:
    """The components of a tiny diffusion world model pipeline (64x64 frames, random weights moved off adaLN-Zero's
    start so that outputs, and gradients, depend on every input)."""
    from diffusers import EDMEulerScheduler
    from transformers import T5EncoderModel

    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
    from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config
    from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel

    torch.manual_seed(0)
    vae = CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, latent_channels=4,
                               latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4)
    tokenizer = build_caption_tokenizer(list(captions), model_max_length=16)
    text_encoder = T5EncoderModel(caption_encoder_config(tokenizer, d_model=16, num_layers=1, num_heads=2))
    transformer = WorldTransformer3DModel(in_channels=4, sample_size=8, hidden_size=24, num_layers=num_layers,
                                          num_heads=2, text_dim=16)
    for p in transformer.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return {"transformer": transformer, "vae": vae, "scheduler": EDMEulerScheduler(sigma_data=1.0),
            "text_encoder": text_encoder, "tokenizer": tokenizer}


def tiny_ar_parts(captions: tuple[str, ...] = ("a red ball falls",), max_latent_frames: int = 3) -> dict:
    """The components of a tiny text-conditioned autoregressive world model pipeline (64x64 frames, 8x8 latent
    grids, a context of `max_latent_frames` latent frames)."""
    from transformers import T5EncoderModel

    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
    from wm_hub.models.cosmos.configuration_cosmos import WorldARConfig
    from wm_hub.models.cosmos.modeling_cosmos import WorldARModel
    from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config

    torch.manual_seed(0)
    vae = CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, quantizer="discrete",
                               fsq_levels=(4, 3))
    tokenizer = build_caption_tokenizer(list(captions), model_max_length=16)
    text_encoder = T5EncoderModel(caption_encoder_config(tokenizer, d_model=16, num_layers=1, num_heads=2))
    config = WorldARConfig(fsq_levels=(4, 3), latent_height=8, latent_width=8, max_latent_frames=max_latent_frames,
                           hidden_size=24, num_hidden_layers=1, num_attention_heads=2, cross_attention_dim=16)
    return {"transformer": WorldARModel(config), "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer}
