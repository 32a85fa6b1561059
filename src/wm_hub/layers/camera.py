"""Camera conditioning: Plücker ray embeddings of pinhole cameras.

A camera is its intrinsics K `(3, 3)` (pixels) and its camera-to-world pose `[R | t]` `(4, 4)` (OpenCV axes:
x right, y down, z forward). The ray through pixel (u, v) has origin o = t and direction
d = normalize(R K^-1 [u, v, 1]^T); its Plücker coordinates are (d, o x d): 6 numbers that identify the line,
independent of where along it o sits. Pixel (u, v) is taken at its centre (u + 0.5, v + 0.5).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def _check_camera(intrinsics: Tensor, poses: Tensor) -> None:
    if intrinsics.shape[-2:] != (3, 3) or poses.shape[-2:] != (4, 4):
        raise ValueError(f"expected intrinsics (..., 3, 3) and camera-to-world poses (..., 4, 4), got "
                         f"{tuple(intrinsics.shape)} and {tuple(poses.shape)}")


def plucker_rays(intrinsics: Tensor, poses: Tensor, height: int, width: int) -> Tensor:
    """Plücker coordinates of every pixel's ray: intrinsics `(..., 3, 3)` and camera-to-world poses `(..., 4, 4)`
    (broadcast against each other) -> `(..., 6, height, width)`, channels (d, o x d)."""
    _check_camera(intrinsics, poses)
    intrinsics, poses = intrinsics.float(), poses.float()
    v, u = torch.meshgrid(torch.arange(height, device=poses.device) + 0.5,
                          torch.arange(width, device=poses.device) + 0.5, indexing="ij")
    pixels = torch.stack([u, v, torch.ones_like(u)], dim=-1).view(-1, 3, 1)  # (HW, 3, 1)
    rays = torch.linalg.inv(intrinsics)[..., None, :, :] @ pixels  # (..., HW, 3, 1): camera frame
    directions = F.normalize((poses[..., None, :3, :3] @ rays).squeeze(-1), dim=-1)  # (..., HW, 3): world frame
    origins = poses[..., None, :3, 3].expand_as(directions)
    moments = torch.linalg.cross(origins, directions, dim=-1)
    out = torch.cat([directions, moments], dim=-1)  # (..., HW, 6)
    return out.movedim(-1, -2).reshape(*out.shape[:-2], 6, height, width)


def plucker_embedding(intrinsics: Tensor, poses: Tensor, image_size: int, grid_size: int) -> Tensor:
    """The Plücker rays of `image_size` x `image_size` frames (K in that image's pixels) averaged down to a
    `grid_size` x `grid_size` latent grid: `(..., 3, 3)`, `(..., 4, 4)` -> `(..., 6, grid_size, grid_size)`."""
    rays = plucker_rays(intrinsics, poses, image_size, image_size)
    lead = rays.shape[:-3]
    pooled = F.adaptive_avg_pool2d(rays.reshape(-1, 6, image_size, image_size), grid_size)
    return pooled.view(*lead, 6, grid_size, grid_size)
