"""Cosmos-style autoregressive world model: a decoder-only transformer over the discrete tokenizer's
FSQ token grids, driven with transformers' `generate()`.

A clip's latent frames `(B, T', h, w)` of token ids are flattened in (t, h, w) order into a sequence
`(B, T'*h*w)`; each position gets 3D rotary coordinates (t, h, w) from its index, so cached keys keep
their positions while generation appends. Blocks are pre-norm: causal self-attention (with a
`transformers` `Cache`), cross-attention to text states when the config has `cross_attention_dim`
(training stage 2, as in Cosmos), and an MLP. Embeddings and head are factorised over the FSQ levels
(see `WorldARConfig`): the training loss is the sum of the per-level cross-entropies, which equals the
cross-entropy over the whole codebook under that factorised distribution.

Control (fine-tuning, `wm_hub.models.cosmos.finetuning_cosmos`): with `camera_conditioning`, the Plücker rays of
the `frames_per_latent` video frames of each latent frame (`6 * frames_per_latent` channels on the latent grid)
are projected per grid cell; with `action_dim`, the actions into those frames (beside their running sum) are
embedded by an MLP per latent frame. Each position's input gets the control of the token it predicts, the next
one, so the first token of a latent frame is already predicted knowing where the camera or the agent goes. Both
new layers start at zero: a model extended from a trained one first predicts exactly as it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DynamicCache, GenerationMixin
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast

from wm_hub.layers.attention import Attention, RotaryEmbedding3D
from wm_hub.layers.control import ActionEmbedding, zero_init
from wm_hub.layers.st_transformer import FeedForward
from wm_hub.modeling_utils import WorldModelPreTrainedModel
from wm_hub.models.cosmos.configuration_cosmos import WorldARConfig

__all__ = ["WorldARModel"]


class WorldARBlock(nn.Module):
    """`(B, L, D)` -> same: causal self-attention (3D rotary, cached), optional cross-attention, MLP."""

    def __init__(self, config: WorldARConfig, layer_idx: int) -> None:
        super().__init__()
        D, heads = config.hidden_size, config.num_attention_heads
        self.layer_idx = layer_idx
        self.norm_self = nn.LayerNorm(D)
        self.self_attention = Attention(D, heads)
        self.cross = config.cross_attention_dim is not None
        if self.cross:
            self.norm_cross = nn.LayerNorm(D)
            self.cross_attention = Attention(D, heads, context_dim=config.cross_attention_dim)
        self.norm_mlp = nn.LayerNorm(D)
        self.mlp = FeedForward(D, config.mlp_ratio)

    def forward(self, x: Tensor, rotary, attn_mask: Tensor | None, cache: Cache | None,
                text: Tensor | None, text_mask: Tensor | None) -> Tensor:
        kv_cache = (lambda k, v: cache.update(k, v, self.layer_idx)) if cache is not None else None
        x = x + self.self_attention(self.norm_self(x), rotary=rotary, attn_mask=attn_mask, kv_cache=kv_cache)
        if self.cross:
            x = x + self.cross_attention(self.norm_cross(x), context=text, context_mask=text_mask)
        return x + self.mlp(self.norm_mlp(x))


class WorldARModel(WorldModelPreTrainedModel, GenerationMixin):
    """Next-token prediction over flattened FSQ token grids `(B, L)`; `generate()` continues a video's tokens."""

    config_class = WorldARConfig
    main_input_name = "input_ids"
    base_model_prefix = "world_ar"

    def __init__(self, config: WorldARConfig) -> None:
        super().__init__(config)
        D = config.hidden_size
        self.digit_embeddings = nn.ModuleList(nn.Embedding(level, D) for level in config.fsq_levels)
        self.rotary = RotaryEmbedding3D(D // config.num_attention_heads)
        self.blocks = nn.ModuleList(WorldARBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, sum(config.fsq_levels))  # every level's digit logits, side by side
        self.camera_embed = self.action_embed = None
        if config.camera_conditioning:
            self.camera_embed = nn.Linear(6 * config.frames_per_latent, D)
        if config.action_dim:
            self.action_embed = ActionEmbedding(config.action_dim, config.frames_per_latent, D)
        self.post_init()
        # post_init initialised every layer: the control inputs start at zero again
        if self.camera_embed is not None:
            zero_init(self.camera_embed)
        if self.action_embed is not None:
            zero_init(self.action_embed[-1])

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # -- tokens <-> FSQ digits -----------------------------------------------------------------------
    def digits(self, ids: Tensor) -> Tensor:
        """Token ids `(...)` -> FSQ digits `(..., num_levels)` (the first level varies fastest, as in
        `FiniteScalarQuantizer`); ids outside the vocabulary are a ValueError."""
        V = self.config.vocab_size
        if ids.numel() and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"token ids must lie in [0, {V}), got [{int(ids.min())}, {int(ids.max())}]")
        levels = torch.tensor(self.config.fsq_levels, device=ids.device)
        basis = torch.cumprod(torch.cat([levels.new_ones(1), levels[:-1]]), dim=0)
        return (ids[..., None] // basis) % levels

    def level_logits(self, hidden: Tensor) -> list[Tensor]:
        """Hidden states `(..., D)` -> one `(..., levels[i])` logit tensor per FSQ level."""
        return list(self.head(hidden).split(self.config.fsq_levels, dim=-1))

    def vocab_logits(self, per_level: list[Tensor]) -> Tensor:
        """Per-level logits -> logits over the whole codebook `(..., vocab_size)`: an id's logit is the sum
        of its digits' logits (the log-probabilities of the factorised distribution, up to a constant)."""
        ids = torch.arange(self.config.vocab_size, device=per_level[0].device)
        digits = self.digits(ids)  # (V, num_levels)
        return sum(logits[..., digits[:, i]] for i, logits in enumerate(per_level))

    # -- positions -------------------------------------------------------------------------------------
    def coordinates(self, start: int, length: int, device: torch.device) -> Tensor:
        """(t, h, w) of sequence positions `start .. start+length-1`: `(3, length)`."""
        c = self.config
        if start + length > c.max_position_embeddings:
            raise ValueError(f"sequence of {start + length} tokens exceeds the model's {c.max_position_embeddings} "
                             f"({c.max_latent_frames} latent frames of {c.latent_height}x{c.latent_width})")
        index = torch.arange(start, start + length, device=device)
        hw = c.tokens_per_frame
        return torch.stack([index // hw, (index % hw) // c.latent_width, index % c.latent_width])

    def control_embedding(self, start: int, length: int, camera: Tensor | None, actions: Tensor | None
                          ) -> Tensor | None:
        """What the controls add to positions `start .. start+length-1`, `(B, length, D)` (None without
        controls): each position gets the control of the token it predicts. camera `(B, T', 6 * frames_per_latent,
        h, w)` Plücker rays and actions `(B, T', frames_per_latent * action_dim)` of the sequence's latent frames
        from position 0 on, as `finetuning_cosmos` groups them; they must cover every given token, and the position
        after the last covered one (which predicts past the controls) gets none."""
        c = self.config
        hw, added, frames = c.tokens_per_frame, [], set()
        if camera is not None:
            if self.camera_embed is None:
                raise ValueError("this model takes no camera input: fine-tune it for camera control first")
            B, T = camera.shape[:2]
            if camera.shape[2:] != (6 * c.frames_per_latent, c.latent_height, c.latent_width):
                raise ValueError(f"expected camera (B, T', 6 * frames_per_latent, h, w) = (B, T', "
                                 f"{6 * c.frames_per_latent}, {c.latent_height}, {c.latent_width}), got "
                                 f"{tuple(camera.shape)}")
            cells = camera.permute(0, 1, 3, 4, 2).reshape(B, T * hw, -1)  # (t, h, w) order, as the tokens
            added.append(self.camera_embed(cells.to(self.dtype)))
            frames.add(T)
        if actions is not None:
            if self.action_embed is None:
                raise ValueError("this model takes no actions: fine-tune it for action control first")
            per_frame = self.action_embed(actions.to(self.dtype))  # (B, T', D)
            added.append(per_frame.repeat_interleave(hw, dim=1))
            frames.add(actions.shape[1])
        if not added:
            return None
        if len(frames) > 1:
            raise ValueError(f"camera and actions cover different numbers of latent frames: {sorted(frames)}")
        tokens = sum(added)
        if tokens.shape[1] < start + length:
            raise ValueError(f"controls for {tokens.shape[1] // hw} latent frames do not cover the sequence's "
                             f"{-(-(start + length) // hw)}")
        tokens = F.pad(tokens, (0, 0, 0, 1))  # the last position predicts past the controls: none
        return tokens[:, start + 1: start + length + 1]

    def _hidden(self, input_ids: Tensor, cache: Cache | None, text: Tensor | None, text_mask: Tensor | None,
                camera: Tensor | None = None, actions: Tensor | None = None) -> Tensor:
        """Token ids `(B, L)` continuing `cache` (if any) -> final hidden states `(B, L, D)`."""
        if (text is not None) != (self.config.cross_attention_dim is not None):
            raise ValueError(f"this model takes cross_attention_dim={self.config.cross_attention_dim}: pass "
                             "encoder_hidden_states exactly when it has text conditioning")
        L = input_ids.shape[1]
        start = cache.get_seq_length() if cache is not None else 0
        coords = self.coordinates(start, L, input_ids.device)
        digits = self.digits(input_ids)
        x = sum(embed(digits[..., i]) for i, embed in enumerate(self.digit_embeddings))  # (B, L, D)
        control = self.control_embedding(start, L, camera, actions)
        if control is not None:
            x = x + control.to(x.dtype)
        mask = (torch.ones(L, start + L, dtype=torch.bool, device=x.device).tril(diagonal=start)
                if L > 1 else None)
        text_mask = text_mask.bool() if text_mask is not None else None
        for block in self.blocks:
            x = block(x, lambda t: self.rotary.rotate(t, coords), mask, cache, text, text_mask)
        return self.norm(x)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        logits_to_keep: int = 0,
        camera: Tensor | None = None,
        actions: Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`input_ids` `(B, L)` continue the `cache` (if any). `labels` `(B, L)` (-100: not scored) give the
        loss of predicting token i+1 from tokens up to i. `logits_to_keep` > 0 computes codebook logits
        for the last positions only (a `(B, L, vocab_size)` tensor is large: generation keeps 1).
        `attention_mask` may only mark every token as real: sequences are never padded here. `camera` and
        `actions` (models fine-tuned for control) cover the whole sequence's latent frames, the cached ones
        included: see `control_embedding`; `generate()` passes them on at every step."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("padded sequences are not supported: give every sequence the same length")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache()
        hidden = self._hidden(input_ids, cache if use_cache else None, encoder_hidden_states, encoder_attention_mask,
                              camera, actions)
        loss = None
        if labels is not None:
            targets = labels[:, 1:]
            scored = targets != -100
            target_digits = self.digits(targets.clamp(min=0))
            loss = sum(F.cross_entropy(logits[scored], target_digits[..., i][scored])
                       for i, logits in enumerate(self.level_logits(hidden[:, :-1])))
        kept = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        logits = self.vocab_logits(self.level_logits(kept))
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache if use_cache else None)

    @torch.no_grad()
    def score(self, input_ids: Tensor, encoder_hidden_states: Tensor | None = None,
              encoder_attention_mask: Tensor | None = None, camera: Tensor | None = None,
              actions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Teacher-forced next-token negative log-likelihood (nats) and whether the most likely token is the
        right one, for tokens 2..L of `input_ids` `(B, L)`: two `(B, L-1)` tensors."""
        hidden = self._hidden(input_ids, None, encoder_hidden_states, encoder_attention_mask, camera, actions)
        targets = self.digits(input_ids[:, 1:])
        per_level = self.level_logits(hidden[:, :-1])
        nll = sum(F.cross_entropy(logits.transpose(1, 2), targets[..., i], reduction="none")
                  for i, logits in enumerate(per_level))
        correct = torch.stack([logits.argmax(-1) == targets[..., i] for i, logits in enumerate(per_level)]).all(0)
        return nll, correct
