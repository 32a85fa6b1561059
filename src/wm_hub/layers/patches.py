"""Video <-> patch tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PatchEmbed(nn.Module):
    """Video `(B, T, C, H, W)` -> tokens `(B, T, N, D)`, N = (H/p)(W/p), plus a learned position per patch."""

    def __init__(self, image_size: int, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.position = nn.Parameter(nn.init.trunc_normal_(torch.empty((image_size // patch_size) ** 2, dim), std=0.02))

    def forward(self, video: Tensor) -> Tensor:
        B, T, C, H, W = video.shape
        if (C, H, W) != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"expected video (B, T, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(video.shape)}"
            )
        x = self.proj(video.reshape(B * T, C, H, W))  # (B*T, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2).reshape(B, T, -1, x.shape[1]) + self.position


class PatchUnembed(nn.Module):
    """Tokens `(B, T, N, D)` -> video `(B, T, C, H, W)` (a linear map to each patch's pixels)."""

    def __init__(self, image_size: int, patch_size: int, out_channels: int, dim: int) -> None:
        super().__init__()
        self.grid, self.patch_size, self.out_channels = image_size // patch_size, patch_size, out_channels
        self.proj = nn.Linear(dim, patch_size * patch_size * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        B, T, N, _ = x.shape
        g, p, c = self.grid, self.patch_size, self.out_channels
        x = self.proj(x).view(B, T, g, g, p, p, c)
        return x.permute(0, 1, 6, 2, 4, 3, 5).reshape(B, T, c, g * p, g * p)
