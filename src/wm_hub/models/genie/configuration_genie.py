"""Configs of Genie's three parts: video tokenizer, latent action model, dynamics model."""

from __future__ import annotations

from transformers import PretrainedConfig

__all__ = ["GenieTokenizerConfig", "LatentActionConfig", "DynamicsConfig"]


def _check_patches(image_size: int, patch_size: int) -> None:
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")


def _check_heads(hidden_size: int, num_heads: int) -> None:
    if hidden_size % num_heads or (hidden_size // num_heads) % 2:
        raise ValueError(f"hidden_size {hidden_size} must split into num_heads {num_heads} heads of even size")


class PixelVQConfig(PretrainedConfig):
    """Fields shared by the tokenizer and the LAM: a pixel ST-transformer encoder-decoder with a VQ
    bottleneck of `code_dim`-dimensional codes."""

    def __init__(
        self,
        # Architecture
        image_size: int = 64,
        in_channels: int = 3,
        patch_size: int = 4,
        hidden_size: int = 128,
        encoder_layers: int = 4,
        decoder_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        # Quantizer
        code_dim: int = 32,
        commitment_beta: float = 0.25,
        **kwargs,
    ) -> None:
        _check_patches(image_size, patch_size)
        _check_heads(hidden_size, num_heads)
        self.image_size, self.in_channels, self.patch_size = image_size, in_channels, patch_size
        self.hidden_size, self.num_heads, self.mlp_ratio = hidden_size, num_heads, mlp_ratio
        self.encoder_layers, self.decoder_layers = encoder_layers, decoder_layers
        self.code_dim, self.commitment_beta = code_dim, commitment_beta
        super().__init__(**kwargs)

    @property
    def grid_size(self) -> int:
        """Tokens per side of a frame."""
        return self.image_size // self.patch_size


class GenieTokenizerConfig(PixelVQConfig):
    """ST-ViViT VQ-VAE video tokenizer: video in, video out, `codebook_size` discrete codes per patch.
    Architecture fields: `PixelVQConfig`."""

    model_type = "genie_tokenizer"

    def __init__(
        self,
        codebook_size: int = 1024,  # Genie: 1024 codes
        max_frames: int = 16,  # inference: frames of temporal context in the decoder cache (= training clip)
        **kwargs,
    ) -> None:
        self.codebook_size, self.max_frames = codebook_size, max_frames
        super().__init__(**kwargs)


class LatentActionConfig(PixelVQConfig):
    """Latent action model: infers one of `num_actions` discrete actions between consecutive frames.
    Architecture fields: `PixelVQConfig`."""

    model_type = "genie_lam"

    def __init__(
        self,
        num_actions: int = 8,  # Genie: 8 latent actions, few for controllability
        patch_size: int = 8,  # coarser than the tokenizer's: actions are global changes
        # Training: the share of clips whose decoder sees, for each x_{t+1}, only the last
        # `history_dropout_frames` frames instead of x_1..x_t. Our departure from the paper: when actions
        # persist over steps, the motion so far predicts most transitions, and a decoder that always has
        # it lets the latent actions carry nothing (we measured chance-level agreement with the true
        # actions without it). One frame alone hides the velocity too, and the codes then spent
        # themselves on vertical motion (rising / falling), which no action controls in the air; two
        # frames show the velocity, so gravity is the decoder's to learn and the codes keep the action.
        history_dropout: float = 0.5,
        history_dropout_frames: int = 2,
        **kwargs,
    ) -> None:
        if not 0.0 <= history_dropout <= 1.0:
            raise ValueError(f"history_dropout must lie in [0, 1], got {history_dropout}")
        if history_dropout_frames < 1:
            raise ValueError(f"history_dropout_frames must be >= 1, got {history_dropout_frames}")
        self.num_actions, self.history_dropout = num_actions, history_dropout
        self.history_dropout_frames = history_dropout_frames
        super().__init__(patch_size=patch_size, **kwargs)


class DynamicsConfig(PretrainedConfig):
    """MaskGIT dynamics model over video tokens and latent actions."""

    model_type = "genie_dynamics"

    def __init__(
        self,
        # Architecture
        vocab_size: int = 1024,
        grid_size: int = 16,
        num_actions: int = 8,
        hidden_size: int = 192,
        num_layers: int = 6,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        # Training: per-sample Bernoulli mask rate ~ U(mask_rate_min, mask_rate_max) (Genie: U(0.5, 1))
        mask_rate_min: float = 0.5,
        mask_rate_max: float = 1.0,
        # Departures from Genie (defaults off): the share of samples whose frames before a random frame k are
        # given unmasked, as at inference; the loss weight of masked tokens that differ from the previous frame's
        clean_context_prob: float = 0.0,
        changed_token_weight: float = 1.0,
        # Inference
        maskgit_steps: int = 25,
        maskgit_temperature: float = 1.0,  # `temperature` is reserved by transformers for generate()
        max_frames: int = 16,
        **kwargs,
    ) -> None:
        _check_heads(hidden_size, num_heads)
        if not 0.0 <= mask_rate_min <= mask_rate_max <= 1.0:
            raise ValueError(f"expected 0 <= mask_rate_min <= mask_rate_max <= 1, got {mask_rate_min}, {mask_rate_max}")
        if maskgit_steps < 1:
            raise ValueError(f"expected maskgit_steps >= 1, got {maskgit_steps}")
        if not 0.0 <= clean_context_prob <= 1.0:
            raise ValueError(f"expected 0 <= clean_context_prob <= 1, got {clean_context_prob}")
        if changed_token_weight <= 0:
            raise ValueError(f"expected changed_token_weight > 0, got {changed_token_weight}")
        self.vocab_size, self.grid_size, self.num_actions = vocab_size, grid_size, num_actions
        self.hidden_size, self.num_layers, self.num_heads = hidden_size, num_layers, num_heads
        self.mlp_ratio = mlp_ratio
        self.mask_rate_min, self.mask_rate_max = mask_rate_min, mask_rate_max
        self.clean_context_prob, self.changed_token_weight = clean_context_prob, changed_token_weight
        self.maskgit_steps, self.maskgit_temperature, self.max_frames = maskgit_steps, maskgit_temperature, max_frames
        super().__init__(**kwargs)

    @property
    def mask_token_id(self) -> int:
        return self.vocab_size
