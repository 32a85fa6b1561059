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
    (relative to uniform use) are re-initialised to random inputs of the current batch.
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
        picks = torch.randint(0, flat.shape[0], (len(dead),), device=flat.device)
        fresh = flat[picks] + 0.01 * torch.randn_like(flat[picks])
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(fresh, src=0)  # every process restarts the same codes the same way
        self.codebook.weight.data[dead] = fresh.to(self.codebook.weight.dtype)
        self.usage[dead] = 1.0
