"""Spatial-temporal (ST) transformer (Genie): per block, spatial attention among the patches of one
frame, causal temporal attention over the frames of one patch position, then one feed-forward.

Cost is linear in the number of frames: spatial attention is per frame, temporal attention per patch.
Temporal attention uses rotary positions and can keep a key/value cache, so generating frame t+1
after frames 1..t costs one frame's compute. With `cond_dim`, every LayerNorm is an `AdaLayerNorm`
modulated by a per-frame condition (e.g. an action), as DiT conditions on the noise level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wm_hub.layers.attention import SelfAttention


class FeedForward(nn.Sequential):
    """`(..., D) -> (..., D)`: Linear, GELU, Linear."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0) -> None:
        hidden = int(dim * mlp_ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift come from a condition: `x` `(..., D)`, `cond` `(..., cond_dim)`
    broadcastable to it -> `LN(x) * (1 + scale(cond)) + shift(cond)`. Multiplicative conditioning lets a
    condition switch features on, off or flip their sign, which an added embedding does only with effort."""

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.to_scale_shift = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.to_scale_shift(F.silu(cond)).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


def _norm(dim: int, cond_dim: int | None) -> nn.Module:
    return AdaLayerNorm(dim, cond_dim) if cond_dim else nn.LayerNorm(dim)


def _apply(norm: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
    return norm(x, cond) if isinstance(norm, AdaLayerNorm) else norm(x)


@dataclass
class STCache:
    """Temporal keys/values of the frames seen so far, per block: `(B*N, heads, T_past, head_dim)`.

    `position` is the time index of the next frame. At most `max_frames - 1` past frames are kept, and a
    frame attends over at most `max_frames` frames, as in training on clips of that length (a sliding
    window: older frames are dropped; rotary positions keep relative distances right).

    Frames given to `defer` (`(B, T, N, D)` inputs) are run, and committed, with the next forward, in
    one batch with its own frames: a rollout that feeds each generated frame back this way runs the
    transformer once per generated frame (MaskGIT step) instead of once more to commit it.
    """

    max_frames: int | None = None
    position: int = 0
    kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    pending: Tensor | None = None

    def past(self, layer: int) -> tuple[Tensor, Tensor] | None:
        return self.kv[layer] if self.kv else None

    def defer(self, x: Tensor) -> None:
        """Hold frames `x` `(B, T, N, D)` until the next forward, which runs them first and commits them."""
        self.pending = x if self.pending is None else torch.cat([self.pending, x], dim=1)


class STBlock(nn.Module):
    """`(B, T, N, D) -> (B, T, N, D)`: spatial attention, causal temporal attention (over at most `window`
    frames, if given), feed-forward; with `cond_dim`, each pre-norm is modulated by a per-frame condition
    `(B, T, 1, cond_dim)`."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, cond_dim: int | None = None) -> None:
        super().__init__()
        self.norm_spatial = _norm(dim, cond_dim)
        self.spatial = SelfAttention(dim, num_heads)
        self.norm_temporal = _norm(dim, cond_dim)
        self.temporal = SelfAttention(dim, num_heads, causal=True, rotary=True)
        self.norm_mlp = _norm(dim, cond_dim)
        self.mlp = FeedForward(dim, mlp_ratio)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, start: int = 0, cond: Tensor | None = None,
        window: int | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, T, N, D = x.shape
        h = _apply(self.norm_spatial, x, cond).reshape(B * T, N, D)  # one frame per row
        x = x + self.spatial(h)[0].view(B, T, N, D)
        h = _apply(self.norm_temporal, x, cond).transpose(1, 2).reshape(B * N, T, D)  # one patch per row
        out, kv = self.temporal(h, past=past, start=start, window=window)
        x = x + out.view(B, N, T, D).transpose(1, 2)
        return x + self.mlp(_apply(self.norm_mlp, x, cond)), kv


class STTransformer(nn.Module):
    """A stack of `STBlock`s and a final LayerNorm over `(B, T, N, D)` tokens.

    With a `cache`, the input frames continue the cached ones; `commit=True` appends them to the
    cache, `commit=False` leaves it as it was (MaskGIT refines a frame several times before keeping it).
    Frames the cache holds from `STCache.defer` are run before the input frames and committed either way;
    the output covers the input frames only.
    With `cond_dim`, `forward` takes a per-frame condition `cond` `(B, T, cond_dim)`.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, cond_dim: int | None = None
                 ) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.blocks = nn.ModuleList(STBlock(dim, num_heads, mlp_ratio, cond_dim) for _ in range(depth))
        self.norm = _norm(dim, cond_dim)

    def forward(self, x: Tensor, cache: STCache | None = None, commit: bool = True, cond: Tensor | None = None
                ) -> Tensor:
        if (cond is None) != (self.cond_dim is None):
            raise ValueError(f"this transformer takes cond_dim={self.cond_dim}: pass a condition (B, T, cond_dim) "
                             "exactly when it has one")
        if cond is not None:
            if cond.shape != (*x.shape[:2], self.cond_dim):
                raise ValueError(f"expected cond {(*x.shape[:2], self.cond_dim)}, got {tuple(cond.shape)}")
            cond = cond[:, :, None]  # (B, T, 1, cond_dim): one condition per frame
        deferred = 0
        if cache is not None and cache.pending is not None:
            if cond is not None:
                raise ValueError("deferred frames (STCache.defer) are not supported with a per-frame condition")
            deferred, x, cache.pending = cache.pending.shape[1], torch.cat([cache.pending, x], dim=1), None
        start = cache.position if cache is not None else 0
        window = cache.max_frames if cache is not None else None
        new_kv = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, past=cache.past(i) if cache is not None else None, start=start, cond=cond, window=window)
            new_kv.append(kv)
        kept = x.shape[1] if commit else deferred
        if cache is not None and kept:
            new_kv = [(k[:, :, :kept], v[:, :, :kept]) for k, v in new_kv]
            if cache.kv:
                new_kv = [(torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2))
                          for (pk, pv), (k, v) in zip(cache.kv, new_kv, strict=True)]
            drop = max(0, new_kv[0][0].shape[2] - cache.max_frames + 1) if cache.max_frames else 0
            cache.kv = [(k[:, :, drop:], v[:, :, drop:]) for k, v in new_kv]
            cache.position += kept
        return _apply(self.norm, x[:, deferred:], cond)
