"""DINO-WM (Zhou et al. 2024): plan in the patch-feature space of a frozen DINOv2.

- Observation model: `Dinov2Model`, frozen; a frame `(C, H, W)` becomes patch features `(N, E)`.
- Transition model (`Predictor`): a ViT over patch features, each patch token with the frame's action
  embedding (and proprioception embedding) concatenated; a frame-causal mask over a window of `history`
  frames, so every frame's output is its next frame's prediction (teacher forcing, L2 loss), and a rollout
  runs the predictor on one new frame per step (a `FrameWindowCache` keeps the window's keys and values).
  A head on the pooled tokens predicts the next proprioception. Optionally (`rollout_loss_weight`, a
  departure from DINO-WM) the loss also scores an open-loop rollout, the way a planner uses the model.
- Decoder (optional): patch features -> frame, trained on detached features (never reaches the encoder).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import Dinov2Model
from transformers.utils import ModelOutput

from wm_hub.layers.attention import RotaryEmbedding
from wm_hub.layers.transformer import TransformerBlock, frame_causal_mask
from wm_hub.modeling_utils import WorldModelPreTrainedModel
from wm_hub.models.dino_wm.configuration_dino_wm import DinoWMConfig

__all__ = ["DinoWMModel", "DinoWMOutput"]


def _mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, 4 * out_dim), nn.GELU(), nn.Linear(4 * out_dim, out_dim))


class FrameWindowCache:
    """Keys and values of each predictor layer for the last `history - 1` frames, so that a rollout step runs
    the predictor on the new frame's tokens only (the attention window is `history` frames)."""

    def __init__(self, keep_tokens: int) -> None:
        self.keep_tokens = keep_tokens
        self.layers: dict[int, tuple[Tensor, Tensor]] = {}
        self.frames = 0  # frames seen so far: the next frame's temporal position

    def past_frames(self, tokens_per_frame: int) -> int:
        return self.layers[0][0].shape[2] // tokens_per_frame if self.layers else 0

    def layer(self, index: int) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The `kv_cache` callable of layer `index`: new keys and values `(B, heads, L, head_dim)` -> the cached
        ones followed by them; keeps the last `keep_tokens`."""

        def update(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
            if index in self.layers:
                past_k, past_v = self.layers[index]
                k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            self.layers[index] = (k[:, :, k.shape[2] - self.keep_tokens:], v[:, :, v.shape[2] - self.keep_tokens:])
            return k, v

        return update


class Predictor(nn.Module):
    """Frame-causal ViT: tokens `(B, T, N, D)` -> predicted next patch features `(B, T, N, E)` and a pooled
    `(B, T, D)` summary per frame. A token attends to the tokens of its frame and of the `history - 1` frames
    before it; patches carry a learned spatial embedding and frames a rotary temporal one, so attention sees
    only frame offsets and a `FrameWindowCache` makes the rollout step by step exact."""

    def __init__(self, config: DinoWMConfig) -> None:
        super().__init__()
        dim = config.predictor_dim
        self.history = config.history
        self.position = nn.Parameter(torch.zeros(1, 1, config.num_patches, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        head_dim = 2 * math.ceil(dim / config.predictor_heads / 2)  # even, and heads * head_dim >= dim
        self.rotary = RotaryEmbedding(head_dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, config.predictor_heads, config.predictor_mlp_ratio, head_dim=head_dim)
            for _ in range(config.predictor_layers))
        self.norm = nn.LayerNorm(dim)
        self.to_features = nn.Linear(dim, config.embed_dim)

    def new_cache(self, tokens_per_frame: int) -> FrameWindowCache:
        return FrameWindowCache((self.history - 1) * tokens_per_frame)

    def forward(self, tokens: Tensor, cache: FrameWindowCache | None = None) -> tuple[Tensor, Tensor]:
        """`tokens` `(B, T, N, D)`, following the frames in `cache` (if any, which they then join)."""
        B, T, N, D = tokens.shape
        past = cache.past_frames(N) if cache is not None else 0
        first = cache.frames if cache is not None else 0
        positions = torch.arange(first, first + T, device=tokens.device).repeat_interleave(N)
        x = (tokens + self.position).reshape(B, T * N, D)
        mask = frame_causal_mask(T, N, device=x.device, window=self.history, past_frames=past)
        rotate = partial(self.rotary, positions=positions)
        for index, block in enumerate(self.blocks):
            x = block(x, attn_mask=mask, rotary=rotate, kv_cache=cache.layer(index) if cache is not None else None)
        if cache is not None:
            cache.frames += T
        x = self.norm(x).view(B, T, N, D)
        return self.to_features(x), x.mean(2)


class FrameDecoder(nn.Module):
    """Patch features `(B, N, E)` -> frame `(B, C, H, W)` in [-1, 1]: a 1x1 projection of the feature grid,
    then (upsample x2, 3x3 conv) until the patch size is undone, halving the channels at each step (down to
    16): the full-resolution convolutions cost the most."""

    def __init__(self, config: DinoWMConfig) -> None:
        super().__init__()
        enc = config.encoder_config
        self.grid = enc["image_size"] // enc["patch_size"]
        ups = int(math.log2(enc["patch_size"]))
        if 2**ups != enc["patch_size"]:
            raise ValueError(f"the decoder needs a power-of-two patch size, got {enc['patch_size']}")
        ch = config.decoder_channels
        layers: list[nn.Module] = [nn.Conv2d(config.embed_dim, ch, 1)]
        for _ in range(ups):
            out = max(ch // 2, 16)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 3, padding=1), nn.GELU()]
            ch = out
        layers.append(nn.Conv2d(ch, enc.get("num_channels", 3), 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        B, N, E = features.shape
        grid = features.transpose(1, 2).reshape(B, E, self.grid, self.grid)
        return torch.tanh(self.net(grid))


@dataclass
class DinoWMOutput(ModelOutput):
    """`loss` = prediction + weighted proprio (+ weighted rollout) + decoder losses; `predicted`
    `(B, T-1, N, E)` are the teacher-forced predictions of frames 2..T; `reconstruction` `(B, 1, C, H, W)`
    the decoded first frame (with a decoder)."""

    loss: Tensor | None = None
    prediction_loss: Tensor | None = None
    proprio_loss: Tensor | None = None
    rollout_loss: Tensor | None = None
    decoder_loss: Tensor | None = None
    predicted: Tensor | None = None
    reconstruction: Tensor | None = None


class DinoWMPreTrainedModel(WorldModelPreTrainedModel):
    config_class = DinoWMConfig
    base_model_prefix = "dino_wm"
    main_input_name = "pixel_values"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, Dinov2Model):
            return  # the encoder keeps its own initialisation (or its pre-trained weights)
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class DinoWMModel(DinoWMPreTrainedModel):
    """DINO-WM: `encode` frames to patch features, `predict` the next features from a history and
    actions, `rollout` a plan in latent space, `decode` features to frames; `forward` is the training loss.

    Actions are `(B, T, frame_skip * action_dim)` (or `(B, T, frame_skip, action_dim)`): the env actions
    taken from each frame to the next; proprioception `(B, T, proprio_dim)` where the config has it.
    """

    def __init__(self, config: DinoWMConfig) -> None:
        super().__init__(config)
        self.encoder = Dinov2Model(config.dinov2_config)
        self.encoder.requires_grad_(False)
        self.action_encoder = _mlp(config.frame_skip * config.action_dim, config.action_emb_dim)
        if config.proprio_dim:
            self.proprio_encoder = _mlp(config.proprio_dim, config.proprio_emb_dim)
            self.proprio_head = nn.Linear(config.predictor_dim, config.proprio_dim)
        self.predictor = Predictor(config)
        self.decoder = FrameDecoder(config) if config.use_decoder else None
        self.post_init()

    def train(self, mode: bool = True) -> DinoWMModel:
        super().train(mode)
        self.encoder.eval()  # frozen, always in inference mode
        return self

    # -- the three models ----------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """Frames `(B, T, C, H, W)` in [-1, 1] -> patch features `(B, T, N, E)` (frozen encoder)."""
        self._check_frames(frames)
        B, T = frames.shape[:2]
        mean = torch.tensor(self.config.image_mean, device=frames.device).view(1, -1, 1, 1)
        std = torch.tensor(self.config.image_std, device=frames.device).view(1, -1, 1, 1)
        x = ((frames.flatten(0, 1) + 1) / 2 - mean) / std
        features = self.encoder(pixel_values=x).last_hidden_state[:, 1:]  # drop the CLS token
        return features.reshape(B, T, *features.shape[1:])

    def predict(self, features: Tensor, actions: Tensor, proprio: Tensor | None = None,
                cache: FrameWindowCache | None = None) -> tuple[Tensor, Tensor | None]:
        """Frames' features `(B, T, N, E)`, actions `(B, T, S*A)` taken from each frame, proprio `(B, T, P)` ->
        the next frames' features `(B, T, N, E)` and proprio `(B, T, P)` (or None). With a `cache` (from
        `predictor.new_cache`), the frames follow those it holds."""
        B, T, N, _ = features.shape
        actions = self._flat_actions(actions, T)
        parts = [features, self.action_encoder(actions)[:, :, None].expand(-1, -1, N, -1)]
        if self.config.proprio_dim:
            if proprio is None or proprio.shape != (B, T, self.config.proprio_dim):
                raise ValueError(f"expected proprio of shape {(B, T, self.config.proprio_dim)}, got "
                                 f"{None if proprio is None else tuple(proprio.shape)}")
            parts.append(self.proprio_encoder(proprio)[:, :, None].expand(-1, -1, N, -1))
        predicted, pooled = self.predictor(torch.cat(parts, dim=-1), cache)
        next_proprio = self.proprio_head(pooled) if self.config.proprio_dim else None
        return predicted, next_proprio

    def decode(self, features: Tensor) -> Tensor:
        """Patch features `(B, T, N, E)` -> frames `(B, T, C, H, W)` in [-1, 1]."""
        if self.decoder is None:
            raise ValueError("this DINO-WM has no decoder (config.use_decoder=False)")
        B, T = features.shape[:2]
        frames = self.decoder(features.flatten(0, 1))
        return frames.view(B, T, *frames.shape[1:])

    # -- training ------------------------------------------------------------------------------
    def forward(self, pixel_values: Tensor | None, actions: Tensor, proprio: Tensor | None = None,
                features: Tensor | None = None) -> DinoWMOutput:
        """Clips `(B, T, C, H, W)` with their actions and proprio: predict frames 2..T from frames 1..T-1
        (teacher forcing); with `rollout_loss_weight`, also roll the plan out open-loop from frame 1, as
        planning does, and score every predicted frame; decode the first frame (the decoder's loss).
        `features` `(B, T, N, E)`: the clips' patch features, encoded beforehand (the encoder is frozen, so a
        training run can encode its data once); `pixel_values` may then be None, and the decoder is not
        trained (`reconstruct` trains it on frames)."""
        config = self.config
        if features is None:
            if pixel_values is None:
                raise ValueError("expected pixel_values (B, T, C, H, W) or their patch features (B, T, N, E)")
            features = self.encode(pixel_values)  # (B, T, N, E)
        elif features.dim() != 4 or features.shape[2:] != (config.num_patches, config.embed_dim):
            raise ValueError(f"expected features (B, T, {config.num_patches}, {config.embed_dim}), got "
                             f"{tuple(features.shape)}")
        features = features.float()
        T = features.shape[1]
        if T < 2:
            raise ValueError(f"expected clips of at least 2 frames, got {T}")
        actions = self._flat_actions(actions, T)[:, :-1]
        past_proprio = proprio[:, :-1] if proprio is not None else None
        predicted, next_proprio = self.predict(features[:, :-1], actions, past_proprio)
        prediction_loss = F.mse_loss(predicted, features[:, 1:])
        loss = prediction_loss
        proprio_loss = rollout_loss = None
        if next_proprio is not None:
            proprio_loss = F.mse_loss(next_proprio, proprio[:, 1:])
            loss = loss + config.proprio_loss_weight * proprio_loss
        if config.rollout_loss_weight > 0 and T > 2:
            rolled, rolled_proprio = self.rollout(features[:, :1], actions,
                                                  proprio[:, :1] if proprio is not None else None)
            rollout_loss = F.mse_loss(rolled, features[:, 1:])
            if rolled_proprio is not None:
                rollout_loss = rollout_loss + config.proprio_loss_weight * F.mse_loss(rolled_proprio, proprio[:, 1:])
            loss = loss + config.rollout_loss_weight * rollout_loss
        reconstruction = decoder_loss = None
        if self.decoder is not None and pixel_values is not None:
            reconstruction, decoder_loss = self._reconstruction(features[:, :1], pixel_values[:, :1])
            loss = loss + decoder_loss
        return DinoWMOutput(loss=loss, prediction_loss=prediction_loss, proprio_loss=proprio_loss,
                            rollout_loss=rollout_loss, decoder_loss=decoder_loss, predicted=predicted,
                            reconstruction=reconstruction)

    def reconstruct(self, pixel_values: Tensor) -> DinoWMOutput:
        """The decoder's loss alone: frames `(B, T, C, H, W)` -> their features -> decoded frames; `loss` and
        `decoder_loss` are the pixel MSE, `reconstruction` the decoded frames."""
        if self.decoder is None:
            raise ValueError("this DINO-WM has no decoder (config.use_decoder=False)")
        reconstruction, loss = self._reconstruction(self.encode(pixel_values), pixel_values)
        return DinoWMOutput(loss=loss, decoder_loss=loss, reconstruction=reconstruction)

    def _reconstruction(self, features: Tensor, pixel_values: Tensor) -> tuple[Tensor, Tensor]:
        """Decode detached features `(B, T, N, E)`: its loss never reaches the encoder or the predictor."""
        reconstruction = self.decode(features.detach())
        return reconstruction, F.mse_loss(reconstruction, pixel_values)

    # -- planning ------------------------------------------------------------------------------
    def rollout(self, features: Tensor, actions: Tensor, proprio: Tensor | None = None,
                past_actions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Roll a plan out in latent space. `features` `(B, h, N, E)` of the observed frames, `actions`
        `(B, K, S*A)` planned from the last of them, `past_actions` `(B, h-1, S*A)` taken between the
        observed frames, `proprio` `(B, h, P)` -> predicted features `(B, K, N, E)` and proprio `(B, K, P)`.
        The observed frames go through the predictor once, then each step only the frame it predicted."""
        B, h, N = features.shape[:3]
        K = actions.shape[1]
        actions = self._flat_actions(actions, K)
        if h > 1:
            if past_actions is None or past_actions.shape[:2] != (B, h - 1):
                raise ValueError(f"with {h} observed frames, expected past_actions of shape {(B, h - 1)} + "
                                 f"(action size,)")
            actions = torch.cat([self._flat_actions(past_actions, h - 1), actions], dim=1)
        cache = self.predictor.new_cache(N)
        predicted, next_proprio = self.predict(features, actions[:, :h], proprio, cache)
        feats = [predicted[:, -1:]]
        props = [next_proprio[:, -1:]] if next_proprio is not None else []
        for k in range(1, K):
            predicted, next_proprio = self.predict(feats[-1], actions[:, h + k - 1: h + k],
                                                   props[-1] if props else None, cache)
            feats.append(predicted)
            if next_proprio is not None:
                props.append(next_proprio)
        return torch.cat(feats, dim=1), (torch.cat(props, dim=1) if props else None)

    # -- checks --------------------------------------------------------------------------------
    def _check_frames(self, frames: Tensor) -> None:
        size = self.config.image_size
        if frames.dim() != 5 or frames.shape[2:] != (3, size, size):
            raise ValueError(f"expected frames (B, T, 3, {size}, {size}) in [-1, 1], got {tuple(frames.shape)}")

    def _flat_actions(self, actions: Tensor, T: int) -> Tensor:
        """`(B, T, S, A)` or `(B, T, S*A)` -> `(B, T, S*A)`, with an error naming the expected size."""
        size = self.config.frame_skip * self.config.action_dim
        if actions.dim() == 4:
            actions = actions.flatten(2)
        if actions.dim() != 3 or actions.shape[1] != T or actions.shape[2] != size:
            raise ValueError(f"expected actions (B, {T}, {size}) = frame_skip {self.config.frame_skip} x "
                             f"action_dim {self.config.action_dim}, got {tuple(actions.shape)}")
        return actions.float()
