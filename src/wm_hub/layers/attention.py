"""Multi-head attention: self-attention with rotary positions and a key/value cache (ST-transformer),
and self-/cross-attention over 3D token grids (diffusion transformers)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """1D rotary position embedding (RoFormer): rotates channel pairs of q/k by position-dependent angles."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dim, got {head_dim}")
        # Frequencies are recomputed on use, not kept in a buffer: nothing to save or to initialise on load.
        self.head_dim, self.base = head_dim, base

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate `x` `(..., L, head_dim)` by integer `positions` `(L,)`."""
        inv_freq = self.base ** (-torch.arange(0, self.head_dim, 2, device=x.device).float() / self.head_dim)
        angles = positions.float()[:, None] * inv_freq[None, :]  # (L, head_dim/2)
        # Channel pairs (x1, x2) as complex numbers x1 + i x2, rotated by one complex product (in float32):
        # (x1 cos - x2 sin, x1 sin + x2 cos), at a third of the cost of writing that out (a stack and 6 ops).
        rotated = _as_complex(x.float()) * torch.polar(torch.ones_like(angles), angles)
        return torch.view_as_real(rotated).flatten(-2).to(x.dtype)


def _as_complex(x: Tensor) -> Tensor:
    """Float32 `(..., 2k)` -> complex `(..., k)`, pairing neighbouring channels; a view where the layout allows."""
    pairs = x.unflatten(-1, (-1, 2))
    if pairs.stride(-1) != 1 or pairs.storage_offset() % 2 or any(s % 2 for s in pairs.stride()[:-1]):
        pairs = pairs.contiguous()
    return torch.view_as_complex(pairs)


class SelfAttention(nn.Module):
    """Self-attention over the second-to-last axis of `(B, L, D)` inputs.

    With `past` = (k, v) of earlier positions `(B, heads, L_past, head_dim)`, queries attend to those
    too (a key/value cache); the (k, v) of the new positions are returned for the caller to append.
    With a `window`, each query sees at most `window` positions, itself included (sliding-window attention).
    """

    def __init__(self, dim: int, num_heads: int, causal: bool = False, rotary: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim, self.causal = num_heads, dim // num_heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rotary = RotaryEmbedding(self.head_dim) if rotary else None

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, start: int = 0, window: int | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """`x` `(B, L, D)`, positions `start .. start+L-1` -> `(B, L, D)` and the new positions' (k, v)."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, h, L, hd)
        if self.rotary is not None:
            positions = torch.arange(start, start + L, device=x.device)
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        P = past[0].shape[2] if past is not None else 0
        mask = attention_mask(L, P, self.causal, window, x.device)
        if P == 0:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = attend_with_past(q, k, v, past, mask)
        return self.proj(out.transpose(1, 2).reshape(B, L, D)), (k, v)


def attention_mask(L: int, P: int, causal: bool, window: int | None, device: torch.device | str = "cpu"
                   ) -> Tensor | None:
    """`(L, P + L)` bool (True = attend) of `L` new positions after `P` cached ones, causal and/or each query
    seeing at most `window` positions (itself included); None where every query may see every key."""
    if not causal and window is None:
        return None
    query = torch.arange(P, P + L, device=device)[:, None]
    key = torch.arange(P + L, device=device)[None, :]
    mask = key > query - window if window is not None else torch.ones(L, P + L, dtype=torch.bool, device=device)
    if causal:
        mask &= key <= query
    return None if bool(mask.all()) else mask


def attend_with_past(q: Tensor, k: Tensor, v: Tensor, past: tuple[Tensor, Tensor], mask: Tensor | None) -> Tensor:
    """Attention of `q` `(B, h, L, hd)` over cached keys/values `past` `(B, h, P, hd)` and the new `k`, `v`
    `(B, h, L, hd)` (`mask` `(L, P + L)`, True = attend), without concatenating the cache: the scores are
    joined instead, so a query frame refined many times (MaskGIT) never copies the cache."""
    scale = q.shape[-1] ** -0.5
    P = past[0].shape[2]
    if q.shape[2] == 1 and mask is None:
        # One new position per row (a frame generated after the cached ones): products and sums over
        # broadcast shapes; batched matrix products of (1 x hd) rows cost 1.4x as much here.
        scores = torch.cat([(q * past[0]).sum(-1), (q * k).sum(-1)], dim=-1).mul_(scale).softmax(dim=-1)  # (B, h, P+1)
        return (scores[..., :P, None] * past[1]).sum(-2, keepdim=True) + scores[..., P:, None] * v
    scores = torch.cat([q @ past[0].transpose(-1, -2), q @ k.transpose(-1, -2)], dim=-1) * scale  # (B, h, L, P+L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights[..., :P] @ past[1] + weights[..., P:] @ v


class RotaryEmbedding3D(nn.Module):
    """Rotary positions over a (t, h, w) grid: the head dim is split into a time part and two equal
    space parts, each rotated by its own coordinate (as Cosmos' 3D RoPE)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        space = 2 * (head_dim // 6)  # per spatial axis, even
        self.dims = (head_dim - 2 * space, space, space)
        if min(self.dims) < 2 or self.dims[0] % 2:
            raise ValueError(f"3D rotary embedding needs an even head dim >= 6, got {head_dim}")
        self.axes = nn.ModuleList(RotaryEmbedding(d, base) for d in self.dims)

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """Rotate `x` `(..., T*H*W, head_dim)`, tokens in (t, h, w) order, by their grid coordinates."""
        T, H, W = grid
        if x.shape[-2] != T * H * W:
            raise ValueError(f"expected {T}*{H}*{W} = {T * H * W} tokens, got {x.shape[-2]}")
        coords = torch.stack(torch.meshgrid(*(torch.arange(n, device=x.device) for n in grid), indexing="ij"))
        return self.rotate(x, coords.flatten(1))

    def rotate(self, x: Tensor, coords: Tensor) -> Tensor:
        """Rotate `x` `(..., L, head_dim)` by integer (t, h, w) coordinates `coords` `(3, L)`."""
        parts = x.split(self.dims, dim=-1)
        return torch.cat([rope(part, pos) for rope, part, pos in zip(self.axes, parts, coords, strict=True)], dim=-1)


class Attention(nn.Module):
    """Multi-head attention of `x` `(B, L, D)` over itself or over a `context` `(B, S, context_dim)`
    (cross-attention), with optional rotary positions on queries and keys (self-attention) and a
    `context_mask` `(B, S)` (True = attend) for padded contexts, and an `attn_mask` `(L, S)` (True = attend,
    e.g. a causal mask). Heads are `head_dim` wide (default `dim // num_heads`), so a token width that
    does not split into heads (a feature with an action embedding concatenated) still works. A `kv_cache`
    callable, given the new keys and values `(B, heads, L, head_dim)` (after rotary), returns those of
    every position so far (e.g. `transformers` `Cache.update` for one layer)."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, head_dim: int | None = None) -> None:
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}; give head_dim")
            head_dim = dim // num_heads
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.to_q = nn.Linear(dim, inner)
        self.to_kv = nn.Linear(context_dim or dim, 2 * inner)
        self.proj = nn.Linear(inner, dim)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        rotary: Callable[[Tensor], Tensor] | None = None,
        context_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        kv_cache: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        B, L, _ = x.shape
        source = x if context is None else context
        q = self.to_q(x).view(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, L, hd)
        k, v = self.to_kv(source).view(B, source.shape[1], 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = rotary(q), rotary(k)
        if kv_cache is not None:
            k, v = kv_cache(k, v)  # (B, h, S_past + S, hd)
        mask = context_mask[:, None, None, :] if context_mask is not None else None  # (B, 1, 1, S)
        if attn_mask is not None:
            mask = attn_mask if mask is None else mask & attn_mask
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, L, self.num_heads * self.head_dim))

