"""A plain pre-LayerNorm transformer block and the frame-causal mask of frame-major token sequences."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from wm_hub.layers.attention import Attention
from wm_hub.layers.st_transformer import FeedForward


def frame_causal_mask(num_frames: int, tokens_per_frame: int, device: torch.device | None = None,
                      window: int | None = None, past_frames: int = 0) -> Tensor:
    """`(T*N, (P+T)*N)` bool mask (True = attend) over frame-major tokens: a token of frame t attends to every
    token of frames 0..t, or of the last `window` frames t-window+1..t (DINO-WM's predictor). The keys are
    `past_frames` (P) earlier frames, e.g. from a cache, then the T frames of the queries."""
    queries = torch.arange(past_frames, past_frames + num_frames, device=device).repeat_interleave(tokens_per_frame)
    keys = torch.arange(past_frames + num_frames, device=device).repeat_interleave(tokens_per_frame)
    lag = queries[:, None] - keys[None, :]
    return (lag >= 0) & (lag < window) if window is not None else lag >= 0


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: `x + Attention(LN(x))`, then `x + FeedForward(LN(x))`."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, head_dim: int | None = None) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, num_heads, head_dim=head_dim)
        self.mlp = FeedForward(dim, mlp_ratio)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, rotary: Callable[[Tensor], Tensor] | None = None,
                kv_cache: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """`x` `(B, L, D)` -> `(B, L, D)`; `rotary` and `kv_cache` as `Attention` takes them."""
        x = x + self.attention(self.norm1(x), attn_mask=attn_mask, rotary=rotary, kv_cache=kv_cache)
        return x + self.mlp(self.norm2(x))
