"""Config of the Cosmos-style autoregressive world model (a transformers model; the tokenizer and the
diffusion transformer are diffusers models, configured by `register_to_config`)."""

from __future__ import annotations

import math

from transformers import PretrainedConfig

__all__ = ["WorldARConfig"]


class WorldARConfig(PretrainedConfig):
    """Decoder-only transformer over the FSQ token grids of latent frames, flattened in (t, h, w) order.

    The vocabulary is the FSQ codebook, `prod(fsq_levels)` ids. Token embeddings and the output head are
    factorised over the FSQ levels (one small table and one small head per level), so the parameter count
    does not grow with the codebook: the logits of an id are the sum of its digits' logits.
    """

    model_type = "cosmos_world_ar"

    def __init__(
        self,
        # The tokens: FSQ levels of the discrete tokenizer and the latent grid of one frame
        fsq_levels: tuple[int, ...] | list[int] = (8, 8, 8, 5, 5, 5),
        latent_height: int = 8,
        latent_width: int = 8,
        max_latent_frames: int = 9,
        # Architecture
        hidden_size: int = 256,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 4,
        mlp_ratio: float = 4.0,
        # Text conditioning (training stage 2): the width of the text encoder's states, None for none
        cross_attention_dim: int | None = None,
        # Control (fine-tuning, `wm_hub.models.cosmos.finetuning_cosmos`): Plücker camera rays and/or per-step
        # actions of `action_dim` (0: none); each latent frame gets those of its `frames_per_latent` video frames
        # (the tokenizer's temporal compression)
        camera_conditioning: bool = False,
        action_dim: int = 0,
        frames_per_latent: int = 4,
        use_cache: bool = True,
        **kwargs,
    ) -> None:
        if len(fsq_levels) < 1 or min(fsq_levels) < 2:
            raise ValueError(f"expected FSQ levels >= 2, got {tuple(fsq_levels)}")
        if hidden_size % num_attention_heads or (hidden_size // num_attention_heads) < 6:
            raise ValueError(f"hidden_size {hidden_size} must split into {num_attention_heads} heads of >= 6 "
                             "channels (3D rotary positions)")
        self.fsq_levels = [int(level) for level in fsq_levels]
        self.latent_height, self.latent_width, self.max_latent_frames = latent_height, latent_width, max_latent_frames
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        self.num_attention_heads, self.mlp_ratio = num_attention_heads, mlp_ratio
        self.cross_attention_dim, self.use_cache = cross_attention_dim, use_cache
        self.camera_conditioning, self.action_dim = bool(camera_conditioning), int(action_dim)
        self.frames_per_latent = int(frames_per_latent)
        kwargs.setdefault("is_decoder", True)
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return math.prod(self.fsq_levels)

    @property
    def tokens_per_frame(self) -> int:
        return self.latent_height * self.latent_width

    @property
    def max_position_embeddings(self) -> int:
        return self.max_latent_frames * self.tokens_per_frame
