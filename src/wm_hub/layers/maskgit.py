"""MaskGIT (Chang et al. 2022): masked-token training masks and iterative confidence-based decoding."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from wm_hub.layers.distributions import sample_categorical


def random_token_mask(
    shape: tuple[int, ...], low: float = 0.5, high: float = 1.0, generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Bernoulli token mask `shape` = `(B, ...)`: per sample a rate r ~ U(low, high), then each token
    is masked with probability r. Returns a bool tensor (True = masked)."""
    rate = torch.empty(shape[0], device=device).uniform_(low, high, generator=generator)
    rate = rate.view(-1, *[1] * (len(shape) - 1))
    return torch.rand(shape, device=device, generator=generator) < rate


def masked_fraction(step: int, steps: int) -> float:
    """Cosine schedule: the share of tokens still masked after decoding step `step` of `steps`."""
    return math.cos(math.pi / 2 * (step + 1) / steps)


@torch.no_grad()
def maskgit_decode(
    logits_fn: Callable[[Tensor], Tensor],
    batch_size: int,
    num_tokens: int,
    mask_id: int,
    steps: int = 25,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Decode `(B, N)` tokens that start fully masked.

    Each step `logits_fn(tokens)` -> `(B, N, V)` predicts every position; masked positions get a
    sample (temperature 0: the argmax); the most confident samples are kept and the rest re-masked so
    that a `masked_fraction` of tokens stays masked; kept tokens never change. After `steps` steps
    every token is decided.
    """
    if steps < 1:
        raise ValueError(f"expected steps >= 1, got {steps}")
    tokens = torch.full((batch_size, num_tokens), mask_id, dtype=torch.long, device=device)
    for step in range(steps):
        logits = logits_fn(tokens).float()
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            sampled = sample_categorical(probs, generator)
        else:
            probs = torch.softmax(logits, dim=-1)
            sampled = logits.argmax(dim=-1)
        confidence = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        masked = tokens == mask_id
        sampled = torch.where(masked, sampled, tokens)
        confidence = torch.where(masked, confidence, torch.full_like(confidence, math.inf))
        still_masked = int(masked[0].sum())
        remask = min(math.floor(num_tokens * masked_fraction(step, steps)), still_masked - 1)
        if step == steps - 1 or remask <= 0:
            return sampled
        lowest = confidence.topk(remask, dim=-1, largest=False).indices
        tokens = sampled.scatter(1, lowest, mask_id)
    return tokens
