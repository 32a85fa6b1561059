"""A plain pre-LayerNorm transformer block and the frame-causal mask of frame-major token sequences."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wm_hub.layers.attention import Attention
from wm_hub.layers.st_transformer import FeedForward


def frame_causal_mask(num_frames: int, tokens_per_frame: int, device: torch.device | None = None) -> Tensor:
    """`(T*N, T*N)` bool mask over frame-major tokens: a token of frame t attends to every token of
    frames 0..t (DINO-WM's predictor)."""
    frames = torch.arange(num_frames, device=device).repeat_interleave(tokens_per_frame)
    return frames[:, None] >= frames[None, :]


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: `x + Attention(LN(x))`, then `x + FeedForward(LN(x))`."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, head_dim: int | None = None) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, num_heads, head_dim=head_dim)
        self.mlp = FeedForward(dim, mlp_ratio)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """`x` `(B, L, D)` -> `(B, L, D)`."""
        x = x + self.attention(self.norm1(x), attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))
