"""Image and video metrics on tensors in [-1, 1] (the models' convention), plus evaluation helpers.

Images are `(..., C, H, W)`; every metric returns one value per image (the leading dims), so callers
choose how to average.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

DATA_RANGE = 2.0  # [-1, 1]


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"expected pred and target of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.dim() < 3:
        raise ValueError(f"expected images (..., C, H, W), got shape {tuple(pred.shape)}")


def psnr(pred: Tensor, target: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: `(..., C, H, W) -> (...)`; `inf` where equal."""
    _check_pair(pred, target)
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(pred: Tensor, target: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """Structural similarity per image (torchmetrics, 11x11 Gaussian window): `(..., C, H, W) -> (...)`."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(pred, target)
    lead, chw = pred.shape[:-3], pred.shape[-3:]
    values = structural_similarity_index_measure(
        pred.float().reshape(-1, *chw), target.float().reshape(-1, *chw), data_range=data_range, reduction="none"
    )
    return values.reshape(lead)


def delta_t_psnr(
    target: Tensor, pred_inferred: Tensor, pred_random: Tensor, t: int, data_range: float = DATA_RANGE
) -> Tensor:
    """Genie's controllability metric at frame `t`: PSNR of the frame generated with actions inferred
    from the real clip minus PSNR of the frame generated with random actions. Videos are
    `(B, T, C, H, W)`; returns `(B,)` in dB."""
    if target.dim() != 5:
        raise ValueError(f"expected videos (B, T, C, H, W), got shape {tuple(target.shape)}")
    if not 0 <= t < target.shape[1]:
        raise ValueError(f"t={t} is outside the clip's {target.shape[1]} frames")
    return psnr(pred_inferred[:, t], target[:, t], data_range) - psnr(pred_random[:, t], target[:, t], data_range)


def rank_correlation(x: Tensor, y: Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors of one length (ties ranked by order)."""
    if x.dim() != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"expected two 1-D tensors of one length >= 2, got {tuple(x.shape)} and {tuple(y.shape)}")
    rx, ry = (v.double().argsort().argsort().double() for v in (x, y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return (rx @ ry / (rx.norm() * ry.norm()).clamp_min(1e-12)).item()


def random_returns(env: Any, episodes: int, seed: int) -> list[float]:
    """Returns of uniformly random actions in a gymnasium `env` over episodes reset with seeds `seed`, `seed` + 1, ...
    (the baseline on agents' cards)."""
    returns = []
    env.action_space.seed(seed)
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return returns
