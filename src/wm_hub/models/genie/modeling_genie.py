"""Genie (Bruce et al. 2024): an ST-ViViT video tokenizer, a latent action model (LAM) and a MaskGIT
dynamics model, each a `PreTrainedModel`. Video is `(B, T, C, H, W)` in [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PretrainedConfig
from transformers.utils import ModelOutput

from wm_hub.layers.maskgit import maskgit_decode, random_token_mask
from wm_hub.layers.patches import PatchEmbed, PatchUnembed
from wm_hub.layers.quantizers import QuantizerOutput, VectorQuantizer
from wm_hub.layers.st_transformer import STCache, STTransformer
from wm_hub.modeling_utils import WorldModelPreTrainedModel
from wm_hub.models.genie.configuration_genie import DynamicsConfig, GenieTokenizerConfig, LatentActionConfig

__all__ = ["VideoTokenizer", "LatentActionModel", "DynamicsModel"]


class GeniePreTrainedModel(WorldModelPreTrainedModel):
    base_model_prefix = "genie"
    main_input_name = "video"
    _no_split_modules = ["STBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)


def _position(num: int, dim: int) -> nn.Parameter:
    """A learned position embedding `(num, dim)`."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(num, dim), std=0.02))


def _check_video(video: Tensor, config: PretrainedConfig, min_frames: int = 1) -> None:
    c, s = config.in_channels, config.image_size
    if video.dim() != 5 or video.shape[1] < min_frames or tuple(video.shape[2:]) != (c, s, s):
        raise ValueError(f"expected video (B, T>={min_frames}, {c}, {s}, {s}), got shape {tuple(video.shape)}")


# ---------------------------------------------------------------------------------------------
# Video tokenizer
# ---------------------------------------------------------------------------------------------


@dataclass
class TokenizerOutput(ModelOutput):
    """`loss` = reconstruction MSE + VQ loss; `reconstruction` `(B, T, C, H, W)`; `indices` `(B, T, h, w)`."""

    loss: Tensor | None = None
    reconstruction: Tensor | None = None
    indices: Tensor | None = None
    vq_loss: Tensor | None = None
    perplexity: Tensor | None = None
    codes_used: Tensor | None = None


class VideoTokenizer(GeniePreTrainedModel):
    """ST-ViViT VQ-VAE: patches -> causal ST-transformer encoder -> VQ (1024 codes) -> causal
    ST-transformer decoder -> patches. Causal in time, so frame t's tokens depend on frames <= t and
    frames can be decoded one at a time with a cache."""

    config_class = GenieTokenizerConfig

    def __init__(self, config: GenieTokenizerConfig) -> None:
        super().__init__(config)
        c = config
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.hidden_size)
        self.encoder = STTransformer(c.hidden_size, c.encoder_layers, c.num_heads, c.mlp_ratio)
        self.to_code = nn.Linear(c.hidden_size, c.code_dim)
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, beta=c.commitment_beta)
        self.from_code = nn.Linear(c.code_dim, c.hidden_size)
        self.decoder_position = _position(c.grid_size**2, c.hidden_size)  # (N, D)
        self.decoder = STTransformer(c.hidden_size, c.decoder_layers, c.num_heads, c.mlp_ratio)
        self.unembed = PatchUnembed(c.image_size, c.patch_size, c.in_channels, c.hidden_size)
        self.post_init()

    def quantize(self, video: Tensor, cache: STCache | None = None) -> QuantizerOutput:
        """Video `(B, T, C, H, W)` -> quantizer output with `indices` `(B, T, N)`."""
        _check_video(video, self.config)
        return self.quantizer(self.to_code(self.encoder(self.patch_embed(video), cache=cache)))  # (B, T, N, code_dim)

    def encode(self, video: Tensor, cache: STCache | None = None) -> Tensor:
        """Video `(B, T, C, H, W)` -> token ids `(B, T, h, w)`. With a `cache`, the frames continue the ones
        encoded before with the same cache."""
        g = self.config.grid_size
        return self.quantize(video, cache).indices.view(*video.shape[:2], g, g)

    def encode_streaming(self, video: Tensor) -> Tensor:
        """Token ids `(B, T, h, w)` of a video `(B, T, C, H, W)` encoded frame by frame with a cache, each
        frame seeing at most `max_frames` frames: as in inference, whatever the clip's length."""
        cache = self.new_cache()
        return torch.cat([self.encode(video[:, t: t + 1], cache) for t in range(video.shape[1])], dim=1)

    def _decode_codes(self, codes: Tensor, cache: STCache | None = None) -> Tensor:
        x = self.from_code(codes) + self.decoder_position  # (B, T, N, D)
        return self.unembed(self.decoder(x, cache=cache))

    def decode(self, indices: Tensor, cache: STCache | None = None) -> Tensor:
        """Token ids `(B, T, h, w)` -> video `(B, T, C, H, W)`. With a `cache`, the frames continue the
        ones decoded before with the same cache."""
        g, K = self.config.grid_size, self.config.codebook_size
        if indices.dim() != 4 or indices.shape[2:] != (g, g):
            raise ValueError(f"expected token ids (B, T, {g}, {g}), got shape {tuple(indices.shape)}")
        if indices.min() < 0 or indices.max() >= K:
            raise ValueError(f"token ids must lie in [0, {K}), got [{int(indices.min())}, {int(indices.max())}]")
        return self._decode_codes(self.quantizer.lookup(indices.flatten(2)), cache)

    def new_cache(self) -> STCache:
        return STCache(max_frames=self.config.max_frames)

    def forward(self, video: Tensor, return_dict: bool = True) -> TokenizerOutput | tuple:
        q = self.quantize(video)
        reconstruction = self._decode_codes(q.quantized)
        loss = F.mse_loss(reconstruction, video) + q.loss
        g = self.config.grid_size
        out = TokenizerOutput(loss, reconstruction, q.indices.view(*video.shape[:2], g, g), q.loss, q.perplexity,
                              q.codes_used)
        return out if return_dict else out.to_tuple()


# ---------------------------------------------------------------------------------------------
# Latent action model
# ---------------------------------------------------------------------------------------------


@dataclass
class LatentActionOutput(ModelOutput):
    """`reconstruction` `(B, T-1, C, H, W)` predicts frames 2..T; `actions` `(B, T-1)` are the latent
    actions between consecutive frames."""

    loss: Tensor | None = None
    reconstruction: Tensor | None = None
    actions: Tensor | None = None
    vq_loss: Tensor | None = None
    perplexity: Tensor | None = None
    codes_used: Tensor | None = None


class LatentActionModel(GeniePreTrainedModel):
    """Encoder: a causal ST-transformer over the frames (each with its difference from the frame before,
    which makes motion salient: without it the codes we trained learned the level's palette instead)
    plus one learned action token per frame; the action token of frame t+1 (which has seen
    x_1..x_{t+1}) is quantized to one of `num_actions` codes.
    Decoder: a causal ST-transformer that predicts x_{t+1} from x_1..x_t and the latent action a_t, as the
    change x_{t+1} - x_t (in training, for a share of clips, from x_t and a_t alone: see
    `LatentActionConfig.history_dropout`)."""

    config_class = LatentActionConfig

    def __init__(self, config: LatentActionConfig) -> None:
        super().__init__(config)
        c = config
        # The encoder sees each frame and its difference from the one before (2C channels).
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, 2 * c.in_channels, c.hidden_size)
        self.action_token = nn.Parameter(torch.zeros(1, 1, 1, c.hidden_size))
        self.encoder = STTransformer(c.hidden_size, c.encoder_layers, c.num_heads, c.mlp_ratio)
        self.to_code = nn.Linear(c.hidden_size, c.code_dim)
        self.quantizer = VectorQuantizer(c.num_actions, c.code_dim, beta=c.commitment_beta)
        self.decoder_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.hidden_size)
        self.action_proj = nn.Linear(c.code_dim, c.hidden_size)
        # The latent action modulates every decoder norm (scale and shift): a 2-pixel scroll to the left
        # or to the right is the same features with opposite signs, which an added action embedding did
        # not render (the codes we trained that way ignored the horizontal direction).
        self.decoder = STTransformer(c.hidden_size, c.decoder_layers, c.num_heads, c.mlp_ratio, cond_dim=c.hidden_size)
        self.unembed = PatchUnembed(c.image_size, c.patch_size, c.in_channels, c.hidden_size)
        self.post_init()

    def quantize_actions(self, video: Tensor) -> QuantizerOutput:
        """Video `(B, T, C, H, W)`, T >= 2 -> quantizer output over the T-1 transitions."""
        _check_video(video, self.config, min_frames=2)
        change = torch.cat([torch.zeros_like(video[:, :1]), video.diff(dim=1)], dim=1)  # x_t - x_{t-1}
        x = self.patch_embed(torch.cat([video, change], dim=2))  # (B, T, N, D)
        x = torch.cat([self.action_token.expand(*x.shape[:2], 1, -1), x], dim=2)  # (B, T, 1+N, D)
        h = self.encoder(x)[:, 1:, 0]  # (B, T-1, D): action tokens of frames 2..T
        return self.quantizer(self.to_code(h))

    def infer_actions(self, video: Tensor) -> Tensor:
        """Video `(B, T, C, H, W)` -> latent action ids `(B, T-1)` in `range(num_actions)`."""
        return self.quantize_actions(video).indices

    def decode(self, frames: Tensor, actions: Tensor) -> Tensor:
        """Decoder tokens of x_1..x_{T-1} `(B, T-1, N, D)` and action embeddings `(B, T-1, D)` -> hidden
        states; in training, a `history_dropout` share of the clips is decoded with a window of
        `history_dropout_frames` frames (each frame sees only the frames just before it)."""
        p, k = self.config.history_dropout, self.config.history_dropout_frames
        if not self.training or p == 0 or frames.shape[1] <= k:
            return self.decoder(frames, cond=actions)
        windowed = torch.rand(frames.shape[0], device=frames.device) < p
        hidden = torch.empty_like(frames)
        if (~windowed).any():
            hidden[~windowed] = self.decoder(frames[~windowed], cond=actions[~windowed])
        if windowed.any():
            clips, acts = frames[windowed], actions[windowed]  # (b, T', N, D), (b, T', D)
            b, T, N, D = clips.shape
            out = torch.empty_like(clips)
            if k > 1:  # the first frames have fewer frames before them
                out[:, : k - 1] = self.decoder(clips[:, : k - 1], cond=acts[:, : k - 1])
            windows = clips.unfold(1, k, 1).permute(0, 1, 4, 2, 3).reshape(-1, k, N, D)  # (b*(T'-k+1), k, N, D)
            window_acts = acts.unfold(1, k, 1).permute(0, 1, 3, 2).reshape(-1, k, D)
            out[:, k - 1:] = self.decoder(windows, cond=window_acts)[:, -1].view(b, T - k + 1, N, D)
            hidden[windowed] = out
        return hidden

    def forward(self, video: Tensor, return_dict: bool = True) -> LatentActionOutput | tuple:
        q = self.quantize_actions(video)
        # The decoder predicts the change x_{t+1} - x_t: the part of the next frame the action explains.
        hidden = self.decode(self.decoder_embed(video[:, :-1]), self.action_proj(q.quantized))  # (B, T-1, N, D)
        reconstruction = video[:, :-1] + self.unembed(hidden)
        # The error is measured relative to the size of the change, so that predicting "no change" costs
        # 1 whatever the clip; with plain MSE (changes are small) the VQ commitment term's gradient on the
        # encoder was 7x the reconstruction's and the codes collapsed onto the level palette.
        change = (video[:, 1:] - video[:, :-1]).pow(2).mean().detach().clamp_min(1e-6)
        loss = F.mse_loss(reconstruction, video[:, 1:]) / change + q.loss
        out = LatentActionOutput(loss, reconstruction, q.indices, q.loss, q.perplexity, q.codes_used)
        return out if return_dict else out.to_tuple()


# ---------------------------------------------------------------------------------------------
# Dynamics model
# ---------------------------------------------------------------------------------------------


@dataclass
class DynamicsOutput(ModelOutput):
    """`loss`: cross-entropy on the masked tokens (tokens that changed since the previous frame weighted by
    `changed_token_weight`); `logits` `(B, T, N, vocab)`; `accuracy` on the masked tokens, and
    `changed_accuracy` on those of them that changed (NaN if none)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    accuracy: Tensor | None = None
    changed_accuracy: Tensor | None = None


class DynamicsModel(GeniePreTrainedModel):
    """A causal ST-transformer over video tokens `(B, T, N)`; frame t's tokens get the embedding of the
    latent action a_{t-1} that led to it (frame 1 a learned "no action"). Trained MaskGIT-style: the
    tokens of frames 2..T are masked with a per-sample Bernoulli rate ~ U(0.5, 1) and predicted (with
    `clean_context_prob`, some samples keep the frames before a random frame unmasked)."""

    config_class = DynamicsConfig
    main_input_name = "tokens"

    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__(config)
        c = config
        self.token_embed = nn.Embedding(c.vocab_size + 1, c.hidden_size)  # + the mask token
        self.position = _position(c.grid_size**2, c.hidden_size)  # (N, D)
        self.action_embed = nn.Embedding(c.num_actions + 1, c.hidden_size)  # + "no action" for frame 1
        self.transformer = STTransformer(c.hidden_size, c.num_layers, c.num_heads, c.mlp_ratio)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)
        self.post_init()

    def _embed(self, tokens: Tensor, actions: Tensor) -> Tensor:
        """tokens `(B, T, N)`, actions `(B, T)` (the action into each frame) -> `(B, T, N, D)`."""
        return self.token_embed(tokens) + self.position + self.action_embed(actions)[:, :, None]

    def _check_actions(self, actions: Tensor) -> None:
        n = self.config.num_actions
        if actions.numel() and (actions.min() < 0 or actions.max() >= n):
            raise ValueError(f"latent actions must lie in range({n}), got [{int(actions.min())}, {int(actions.max())}]")

    def forward(
        self,
        tokens: Tensor,
        actions: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DynamicsOutput | tuple:
        """tokens `(B, T, h, w)` or `(B, T, N)`; actions `(B, T-1)`, a_t between frames t and t+1;
        mask `(B, T, N)` bool (True = hidden), drawn MaskGIT-style if not given."""
        B, T = tokens.shape[:2]
        tokens = tokens.reshape(B, T, -1)
        if actions.shape != (B, T - 1):
            raise ValueError(f"expected actions (B, T-1) = ({B}, {T - 1}), got {tuple(actions.shape)}")
        self._check_actions(actions)
        c = self.config
        if mask is None:
            mask = self._training_mask(tokens.shape, generator, tokens.device)
        inputs = tokens.masked_fill(mask, c.mask_token_id)
        into = torch.cat([torch.full_like(actions[:, :1], c.num_actions), actions], dim=1)  # (B, T)
        logits = self.head(self.transformer(self._embed(inputs, into)))  # (B, T, N, V)
        loss = accuracy = changed_accuracy = None
        if mask.any():
            changed = torch.zeros_like(mask)
            changed[:, 1:] = tokens[:, 1:] != tokens[:, :-1]
            changed = changed[mask]
            weight = torch.where(changed, c.changed_token_weight, 1.0)
            loss = (F.cross_entropy(logits[mask], tokens[mask], reduction="none") * weight).sum() / weight.sum()
            hit = logits[mask].argmax(-1) == tokens[mask]
            accuracy = hit.float().mean()
            changed_accuracy = hit[changed].float().mean()  # NaN when no masked token changed
        out = DynamicsOutput(loss, logits, accuracy, changed_accuracy)
        return out if return_dict else out.to_tuple()

    def _training_mask(self, shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """MaskGIT training mask `(B, T, N)` (True = hidden): the first frame always given; with probability
        `clean_context_prob` a sample also keeps its frames before a random frame k in [1, T) unmasked."""
        c = self.config
        mask = random_token_mask(shape, c.mask_rate_min, c.mask_rate_max, generator, device)
        mask[:, 0] = False  # the first frame is the prompt
        B, T = shape[:2]
        if c.clean_context_prob > 0 and T > 2:
            clean = torch.rand(B, generator=generator, device=device) < c.clean_context_prob
            first = torch.randint(1, T, (B,), generator=generator, device=device)  # first frame that may be masked
            given = clean[:, None] & (torch.arange(T, device=device) < first[:, None])  # (B, T)
            mask &= ~given[..., None]
        return mask

    def new_cache(self) -> STCache:
        return STCache(max_frames=self.config.max_frames)

    @torch.no_grad()
    def prime(self, tokens: Tensor, actions: Tensor, cache: STCache) -> None:
        """Feed known frames into `cache`: tokens `(B, T, N)`, actions into each frame `(B, T)` (the first
        frame of a session takes `num_actions`, "no action"). They run with the next frame's first MaskGIT
        step, in one forward (`STCache.defer`)."""
        cache.defer(self._embed(tokens, actions))

    @torch.no_grad()
    def generate_frame(
        self,
        action: Tensor,
        cache: STCache,
        steps: int | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample the next frame's tokens `(B, N)` given the cached frames and latent actions `(B,)`, by
        MaskGIT decoding (`steps`, `temperature` default to the config's), then feed it to `cache`."""
        self._check_actions(action)
        c = self.config
        B, N = action.shape[0], c.grid_size**2
        into = action.view(B, 1)

        def logits_fn(frame: Tensor) -> Tensor:
            h = self.transformer(self._embed(frame[:, None], into), cache=cache, commit=False)
            return self.head(h)[:, 0]  # (B, N, V)

        frame = maskgit_decode(
            logits_fn, B, N, c.mask_token_id, steps or c.maskgit_steps,
            c.maskgit_temperature if temperature is None else temperature, generator, action.device,
        )
        self.prime(frame[:, None], into, cache)
        return frame
