"""Vector quantization (VQ-VAE) with cosine-similarity lookup and dead-code restarts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """`quantized` `(..., D)` (straight-through), `indices` `(...)`, the VQ `loss`, the batch's code
    `perplexity` (exp of the entropy of code use) and `codes_used` (share of codes hit in the batch)."""

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    perplexity: Tensor
    codes_used: Tensor


class VectorQuantizer(nn.Module):
    """`(..., D)` -> nearest of `num_codes` codes by cosine similarity (inputs and codes l2-normalised,
    as in ViT-VQGAN: it keeps more codes in use than Euclidean lookup).

    Loss: codebook term + `beta` * commitment term. Collapse guard: an EMA of each code's use is kept;
    in training (train mode with gradients on), codes whose use falls below `restart_threshold`
    (relative to uniform use) are re-initialised to the inputs of the current batch that the codebook
    fits worst.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        beta: float = 0.25,
        restart_threshold: float = 0.03,
        usage_decay: float = 0.99,
    ) -> None:
        super().__init__()
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.restart_threshold, self.usage_decay = restart_threshold, usage_decay
        self.codebook = nn.Embedding(num_codes, dim)
        nn.init.normal_(self.codebook.weight)
        self.register_buffer("usage", torch.ones(num_codes))

    def codes(self) -> Tensor:
        """The normalised codebook `(num_codes, D)`."""
        return F.normalize(self.codebook.weight, dim=-1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Integer codes `(...)` -> code vectors `(..., D)`."""
        return self.codes()[indices]

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"expected inputs (..., {self.dim}), got shape {tuple(z.shape)}")
        flat = F.normalize(z.reshape(-1, self.dim), dim=-1)  # (M, D)
        codes = self.codes()
        indices = (flat @ codes.T).argmax(dim=-1)  # (M,)
        quantized = codes[indices]
        loss = F.mse_loss(quantized, flat.detach()) + self.beta * F.mse_loss(flat, quantized.detach())
        counts = torch.bincount(indices, minlength=self.num_codes).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        if self.training and torch.is_grad_enabled():
            self._track_and_restart(counts, flat.detach())
        return QuantizerOutput(
            quantized=(flat + (quantized - flat).detach()).view_as(z),
            indices=indices.view(z.shape[:-1]),
            loss=loss,
            perplexity=perplexity,
            codes_used=(counts > 0).float().mean(),
        )

    @torch.no_grad()
    def _track_and_restart(self, counts: Tensor, flat: Tensor) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        share = counts * self.num_codes / counts.sum()  # 1 = uniform use
        self.usage.mul_(self.usage_decay).add_(share, alpha=1 - self.usage_decay)
        dead = torch.nonzero(self.usage < self.restart_threshold).squeeze(1)
        if len(dead) == 0:
            return
        # Restart onto the inputs the codebook serves worst (lowest similarity to their code), not random
        # ones: a random input mostly lies in a well-served cluster, and a code restarted there splits it
        # in two (a duplicate), which for a latent action model means one action spread over two codes.
        fit = (flat @ self.codes().T).max(dim=-1).values  # (M,)
        picks = fit.argsort()[: len(dead)]
        fresh = flat[picks] + 0.01 * torch.randn_like(flat[picks])
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(fresh, src=0)  # every process restarts the same codes the same way
        self.codebook.weight.data[dead] = fresh.to(self.codebook.weight.dtype)
        self.usage[dead] = 1.0


class FiniteScalarQuantizer(nn.Module):
    """Finite Scalar Quantization (Mentzer et al. 2023): each of the `len(levels)` channels is bounded
    and rounded to `levels[i]` values, so the implicit codebook has prod(levels) codes, all reachable
    (no collapse, no codebook loss). `(..., len(levels))` -> quantized values in [-1, 1] (straight-
    through) and integer ids in `range(codebook_size)`."""

    def __init__(self, levels: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        if len(levels) < 1 or min(levels) < 2:
            raise ValueError(f"expected levels >= 2 per channel, got {tuple(levels)}")
        self.levels = tuple(int(level) for level in levels)
        basis = torch.cumprod(torch.tensor((1, *self.levels[:-1])), dim=0)
        self.register_buffer("_levels", torch.tensor(self.levels), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def codebook_size(self) -> int:
        return int(torch.prod(torch.tensor(self.levels)))

    @property
    def dim(self) -> int:
        return len(self.levels)

    def _half_width(self) -> Tensor:
        return (self._levels // 2).float()

    def bound(self, z: Tensor) -> Tensor:
        """Squash each channel to (-(L-1)/2, (L-1)/2), shifted so even L round to L values."""
        levels = self._levels.float()
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """`z` `(..., dim)` -> (`quantized` `(..., dim)` in [-1, 1], `indices` `(...)`)."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"expected inputs (..., {self.dim}) for levels {self.levels}, got {tuple(z.shape)}")
        bounded = self.bound(z.float())
        rounded = bounded + (bounded.round() - bounded).detach()  # straight-through
        quantized = rounded / self._half_width()
        return quantized.to(z.dtype), self.codes_to_indices(quantized)

    def codes_to_indices(self, quantized: Tensor) -> Tensor:
        digits = (quantized.float() * self._half_width() + self._half_width()).round().long()
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Integer ids `(...)` -> quantized values `(..., dim)`; ids outside the codebook are a ValueError."""
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(
                f"token ids must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]"
            )
        digits = (indices.long()[..., None] // self._basis) % self._levels
        return (digits.float() - self._half_width()) / self._half_width()
