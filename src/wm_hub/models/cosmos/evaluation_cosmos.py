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
from wm_hub.data.clips import sample_clips, tensor_to_frames, write_gif
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


def platformer_clips(count: int, clip_len: int):
    """Held-out platformer clips (levels 3000000+): out-of-distribution video for the physics tokenizers."""
    from wm_hub.envs.platformer import ExplorationPolicy, PlatformerEnv

    episodes = max(1, count // 4)
    return record_episodes(PlatformerEnv(), episodes, policy=ExplorationPolicy(3), max_steps=4 * clip_len,
                           seed=3_000_000, progress=False)


def eval_clip_len(model: CausalVideoTokenizer) -> int:
    """Clips of 1 + 4 latent groups: 17 frames at 4x temporal compression, 33 at 8x."""
    return 1 + 4 * model.config.temporal_compression


def evaluate(model: CausalVideoTokenizer, dataset, count: int = 64) -> list[Metric]:
    """The tokenizer card's numbers on held-out physics clips of 1 + 4 latent groups and on platformer clips."""
    clip_len = eval_clip_len(model)
    held_out = reconstruction_scores(model, dataset, count, clip_len)
    ood = reconstruction_scores(model, platformer_clips(count, clip_len), count, clip_len)
    return [
        Metric("PSNR", held_out["psnr"], "psnr", DATASET, "dB"),
        Metric("SSIM", held_out["ssim"], "ssim", DATASET),
        Metric("temporal-difference PSNR", held_out["temporal"], "psnr", DATASET, "dB"),
        Metric("PSNR, out of distribution (platformer)", ood["psnr"], "psnr", OOD, "dB"),
    ]


def compression_name(model: CausalVideoTokenizer) -> str:
    """E.g. "cv4x8x8": continuous or discrete, temporal x spatial x spatial."""
    c = model.config
    kind = "cv" if c.quantizer == "continuous" else "dv"
    return f"{kind}{c.temporal_compression}x{c.spatial_compression}x{c.spatial_compression}"


def write_card(folder, model: CausalVideoTokenizer, metrics: list[Metric], command: str, training: str) -> None:
    """Write a tokenizer's model card into `folder`."""
    from wm_hub.cards import write_model_card

    c = model.config
    if c.quantizer == "continuous":
        bottleneck = f"continuous latents with {c.latent_channels} channels, normalised by the stats in its config"
        usage_tail = ("latents = tokenizer.encode(video).latent_dist.mode()  # (1, 5, 16, 8, 8)\n"
                      "recon = tokenizer.decode(latents, num_frames=17).sample")
    else:
        size = 1
        for level in c.fsq_levels:
            size *= level
        bottleneck = f"FSQ-discrete tokens, levels {tuple(c.fsq_levels)} (a codebook of {size})"
        usage_tail = ("tokens = tokenizer.tokenize(video)  # (1, 5, 8, 8) integer ids\n"
                      "recon = tokenizer.detokenize(tokens, num_frames=17)")
    write_model_card(
        folder,
        name=folder.name,
        family="cosmos",
        pipeline_tag="feature-extraction",
        summary=(
            f"A Cosmos-style causal video tokenizer ({compression_name(model)}: {c.temporal_compression}x temporal, "
            f"{c.spatial_compression}x{c.spatial_compression} spatial compression) with {bottleneck}. Causal 3D "
            "convolutions and per-frame attention: the first frame is encoded alone, then each group of "
            f"{c.temporal_compression} frames, and encoding the first frames of a clip gives exactly the first "
            "latents of the whole clip. Trained on wm_hub's captioned 2D physics clips (64x64)."
        ),
        metrics=metrics,
        command=command,
        usage=("import torch\nfrom wm_hub import CausalVideoTokenizer\n\n"
               f"tokenizer = CausalVideoTokenizer.from_pretrained({folder.name!r})\n"
               "video = torch.rand(1, 17, 3, 64, 64) * 2 - 1  # (B, T, C, H, W) in [-1, 1], T = 1 + 4k\n"
               + usage_tail),
        dataset="wm_hub/physics",
        training=training,
        limitations=(
            "Trained on one synthetic domain: flat-coloured shapes on plain backgrounds at 64x64. Expect lower "
            "numbers on other video (the out-of-distribution row above is the Genie platformer). The stage-2 "
            "temporal loss matches frame differences, not optical flow, and the Gram loss uses pixel-patch "
            "features, not a pretrained network's: nothing could be downloaded where it was trained."
        ),
        config=dict(model.config),
        tags=["cosmos", "video-tokenizer", "causal", "fsq" if c.quantizer == "discrete" else "continuous"],
    )


def demo(model: CausalVideoTokenizer, out_dir, name: str) -> str:
    """Reconstruct a held-out physics clip; write input | reconstruction side by side as a GIF (upscaled 4x)
    and return a one-line summary with its PSNR."""
    from pathlib import Path

    import numpy as np

    from wm_hub.envs.physics import PhysicsEnv, ScriptedPaddle

    clip_len = eval_clip_len(model)
    clips = record_episodes(PhysicsEnv(), 1, policy=ScriptedPaddle(0), max_steps=clip_len - 1, seed=4_000_000,
                            progress=False)
    video = next(iter(sample_clips(clips, clip_len, 1)))["frames"]
    with torch.no_grad():
        recon = model.eval()(video).sample.clamp(-1, 1)
    value = psnr(recon, video).mean().item()
    pairs = np.concatenate([tensor_to_frames(video[0]), tensor_to_frames(recon[0])], axis=2)  # (T, H, 2W, C)
    path = write_gif(pairs, Path(out_dir) / f"{name}.gif")
    return f"{name}: reconstructed {clip_len} held-out frames at {value:.1f} dB PSNR -> {path} (input | output)"
