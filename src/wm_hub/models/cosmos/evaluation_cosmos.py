"""Evaluation of Cosmos-style checkpoints (`wm-hub eval <name> --data data/physics-eval`).

Tokenizers, TokenBench-style, on held-out physics scenes (`wm-hub data make physics --seed 1000000`):
PSNR, SSIM, a temporal-consistency score (PSNR between the frame differences of reconstruction and
input: high when motion is reproduced without flicker), and PSNR on out-of-distribution clips (the
Genie platformer).
"""

from __future__ import annotations

import torch

from wm_hub.cards import Metric
from wm_hub.data import record_episodes
from wm_hub.data.clips import sample_clips
from wm_hub.metrics import psnr, ssim
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer

DATASET = "wm_hub/physics-eval (seeds 1000000+)"
OOD = "wm_hub/platformer (levels 3000000+, out of distribution)"


@torch.no_grad()
def reconstruction_scores(model: CausalVideoTokenizer, dataset, count: int, clip_len: int) -> dict[str, float]:
    """Mean PSNR, SSIM and temporal-difference PSNR (dB) of reconstructions of `count` clips."""
    model.eval()
    scores: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "temporal": []}
    for batch in sample_clips(dataset, clip_len, count):
        video = batch["frames"]
        recon = model(video).sample.clamp(-1, 1)
        scores["psnr"].append(psnr(recon, video).flatten())
        scores["ssim"].append(ssim(recon, video).flatten())
        # frame differences live in [-2, 2]: a data range of 4
        scores["temporal"].append(psnr(recon.diff(dim=1), video.diff(dim=1), data_range=4.0).flatten())
    return {k: torch.cat(v)[torch.isfinite(torch.cat(v))].mean().item() for k, v in scores.items()}


def platformersample_clips(count: int, clip_len: int):
    """Held-out platformer clips (levels 3000000+): out-of-distribution video for the physics tokenizers."""
    from wm_hub.envs.platformer import ExplorationPolicy, PlatformerEnv

    episodes = max(1, count // 4)
    return record_episodes(PlatformerEnv(), episodes, policy=ExplorationPolicy(3), max_steps=4 * clip_len,
                           seed=3_000_000, progress=False)


def evaluate(model: CausalVideoTokenizer, dataset, count: int = 64) -> list[Metric]:
    """The tokenizer card's numbers on held-out physics clips of 1 + 4 latent groups and on platformer clips."""
    clip_len = 1 + 4 * model.config.temporal_compression
    held_out = reconstruction_scores(model, dataset, count, clip_len)
    ood = reconstruction_scores(model, platformersample_clips(count, clip_len), count, clip_len)
    return [
        Metric("PSNR", held_out["psnr"], "psnr", DATASET, "dB"),
        Metric("SSIM", held_out["ssim"], "ssim", DATASET),
        Metric("temporal-difference PSNR", held_out["temporal"], "psnr", DATASET, "dB"),
        Metric("PSNR, out of distribution (platformer)", ood["psnr"], "psnr", OOD, "dB"),
    ]
