"""Spatial-temporal (ST) transformer (Genie): per block, spatial attention among the patches of one
frame, causal temporal attention over the frames of one patch position, then one feed-forward.

Cost is linear in the number of frames: spatial attention is per frame, temporal attention per patch.
Temporal attention uses rotary positions and can keep a key/value cache, so generating frame t+1
after frames 1..t costs one frame's compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from wm_hub.layers.attention import SelfAttention


class FeedForward(nn.Sequential):
    """`(..., D) -> (..., D)`: Linear, GELU, Linear."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0) -> None:
        hidden = int(dim * mlp_ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


@dataclass
class STCache:
    """Temporal keys/values of the frames seen so far, per block: `(B*N, heads, T_past, head_dim)`.

    `position` is the time index of the next frame. At most `max_frames - 1` past frames are kept, so a
    new frame attends over `max_frames` frames, as in training on clips of that length (a sliding
    window: older frames are dropped; rotary positions keep relative distances right).
    """

    max_frames: int | None = None
    position: int = 0
    kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    def past(self, layer: int) -> tuple[Tensor, Tensor] | None:
        return self.kv[layer] if self.kv else None


class STBlock(nn.Module):
    """`(B, T, N, D) -> (B, T, N, D)`: spatial attention, causal temporal attention, feed-forward."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm_spatial = nn.LayerNorm(dim)
        self.spatial = SelfAttention(dim, num_heads)
        self.norm_temporal = nn.LayerNorm(dim)
        self.temporal = SelfAttention(dim, num_heads, causal=True, rotary=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, start: int = 0
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, T, N, D = x.shape
        h = x.reshape(B * T, N, D)  # (B*T, N, D): one frame per row
        h = h + self.spatial(self.norm_spatial(h))[0]
        h = h.view(B, T, N, D).transpose(1, 2).reshape(B * N, T, D)  # (B*N, T, D): one patch per row
        out, kv = self.temporal(self.norm_temporal(h), past=past, start=start)
        h = (h + out).view(B, N, T, D).transpose(1, 2)  # (B, T, N, D)
        return h + self.mlp(self.norm_mlp(h)), kv


class STTransformer(nn.Module):
    """A stack of `STBlock`s and a final LayerNorm over `(B, T, N, D)` tokens.

    With a `cache`, the input frames continue the cached ones; `commit=True` appends them to the
    cache, `commit=False` leaves it as it was (MaskGIT refines a frame several times before keeping it).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(STBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, cache: STCache | None = None, commit: bool = True) -> Tensor:
        start = cache.position if cache is not None else 0
        new_kv = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, past=cache.past(i) if cache is not None else None, start=start)
            new_kv.append(kv)
        if cache is not None and commit:
            drop = max(0, new_kv[0][0].shape[2] - cache.max_frames + 1) if cache.max_frames else 0
            cache.kv = [(k[:, :, drop:], v[:, :, drop:]) for k, v in new_kv]
            cache.position += x.shape[1]
        return self.norm(x)
