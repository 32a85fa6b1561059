"""Evaluation of a Genie pipeline on held-out platformer levels (`wm-hub eval genie-platformer-64`).

Numbers, all on levels never seen in training (`wm-hub data make platformer --seed 1000000`):
- tokenizer reconstruction PSNR;
- ΔtPSNR at t = 4 (Genie): PSNR of frame t generated with latent actions inferred from the real clip
  minus PSNR of frame t generated with random latent actions;
- latent-action agreement: per true action, the share of its transitions the LAM maps to that
  action's most frequent code; and the share of the codebook the LAM uses, with its perplexity;
- PSNR of 16-frame rollouts driven by inferred actions, next to the PSNR of repeating the first frame.
"""

from __future__ import annotations

from collections import Counter

import torch

from wm_hub.cards import Metric
from wm_hub.data.clips import sample_clips, write_gif
from wm_hub.envs.platformer import ACTION_NAMES
from wm_hub.metrics import delta_t_psnr, psnr
from wm_hub.models.genie.pipeline_genie import GeniePipeline

DATASET = "wm_hub/platformer-eval (levels 1000000+)"
PSNR_CAP = 60.0  # dB, per frame, for frames reproduced exactly


@torch.no_grad()
def tokenizer_psnr(pipe: GeniePipeline, dataset, count: int = 128) -> float:
    """Mean PSNR (dB) of tokenizer reconstructions of held-out clips of the tokenizer's window length."""
    values = []
    for batch in sample_clips(dataset, pipe.tokenizer.config.max_frames, count):
        video = batch["frames"].to(pipe.device)
        recon = pipe.tokenizer.decode(pipe.tokenizer.encode(video)).clamp(-1, 1)
        values.append(psnr(recon, video).flatten())
    return torch.cat(values).mean().item()


@torch.no_grad()
def latent_action_counts(pipe: GeniePipeline, dataset, count: int = 512, clip_len: int = 8) -> dict[int, Counter]:
    """For each true action: how often the LAM gives each latent code on its transitions."""
    codes: dict[int, Counter] = {a: Counter() for a in range(len(ACTION_NAMES))}
    for batch in sample_clips(dataset, clip_len, count):
        inferred = pipe.infer_actions(batch["frames"])  # (B, T-1)
        true = batch["actions"][:, :-1, 0]  # action taken at frame t leads to frame t+1
        for a, c in zip(true.flatten().tolist(), inferred.flatten().tolist(), strict=True):
            codes[a][c] += 1
    return codes


def action_agreement(codes: dict[int, Counter]) -> dict[str, float]:
    """For each true action: the share of its transitions mapped to its most frequent latent code."""
    return {ACTION_NAMES[a]: (max(c.values()) / sum(c.values()) if c else float("nan")) for a, c in codes.items()}


def code_usage(codes: dict[int, Counter], num_actions: int) -> tuple[float, float]:
    """(share of the latent codes used, perplexity of their distribution) over all transitions."""
    total = sum(codes.values(), Counter())
    p = torch.tensor([total[k] for k in range(num_actions)], dtype=torch.float64)
    p = p / p.sum().clamp_min(1)
    perplexity = torch.exp(-(p[p > 0] * p[p > 0].log()).sum()).item()
    return (p > 0).double().mean().item(), perplexity


@torch.no_grad()
def rollout_psnr(
    pipe: GeniePipeline, dataset, frames: int, count: int, steps: int | None = None, seed: int = 0,
    temperature: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roll out `frames` frames from the first frame of held-out clips, with latent actions inferred
    from each clip and with random latent actions (MaskGIT `steps` and `temperature` default to the
    config's). Returns (real, inferred-action, random-action) videos `(B, frames+1, C, H, W)`."""
    reals, inferred, randoms = [], [], []
    g = torch.Generator().manual_seed(seed)
    for batch in sample_clips(dataset, frames + 1, count):
        video = batch["frames"].to(pipe.device)
        actions = pipe.infer_actions(video)
        random_actions = torch.randint(0, pipe.num_actions, actions.shape, generator=g)
        kwargs = {"output_type": "pt", "num_inference_steps": steps, "temperature": temperature}
        inferred.append(pipe(video[:, 0], actions, generator=g, **kwargs).frames)
        randoms.append(pipe(video[:, 0], random_actions, generator=g, **kwargs).frames)
        reals.append(video)
    return torch.cat(reals), torch.cat(inferred), torch.cat(randoms)


def evaluate(pipe: GeniePipeline, dataset, count: int = 64) -> list[Metric]:
    """All the card's numbers for `pipe` on the held-out `dataset` (a folder or `datasets.Dataset`)."""
    metrics = [Metric("tokenizer reconstruction PSNR", tokenizer_psnr(pipe, dataset, 2 * count), "psnr",
                      DATASET, "dB")]
    real, inferred, random = rollout_psnr(pipe, dataset, frames=4, count=count)
    metrics.append(Metric("ΔtPSNR (t=4)", delta_t_psnr(real, inferred, random, t=4).mean().item(), "delta_psnr",
                          DATASET, "dB"))
    codes = latent_action_counts(pipe, dataset, 8 * count)
    for counts, (name, share) in zip(codes.values(), action_agreement(codes).items(), strict=True):
        code = f" (code {counts.most_common(1)[0][0]})" if counts else ""
        metrics.append(Metric(f"latent-action agreement: {name}{code}", share, "accuracy", DATASET))
    used, perplexity = code_usage(codes, pipe.num_actions)
    metrics.append(Metric("latent-action codes used (share of the codebook)", used, "code_usage", DATASET))
    metrics.append(Metric("latent-action perplexity", perplexity, "perplexity", DATASET))
    real, inferred, _ = rollout_psnr(pipe, dataset, frames=16, count=count, seed=1)
    metrics.append(Metric("16-frame rollout PSNR (inferred actions)",
                          psnr(inferred[:, 1:], real[:, 1:]).clamp(max=PSNR_CAP).mean().item(), "psnr", DATASET, "dB"))
    # Frames where the player stands still are repeated exactly (PSNR inf): each frame's PSNR is capped
    # at PSNR_CAP dB before averaging, here as in the rollout row above.
    still = real[:, :1].expand_as(real[:, 1:])
    metrics.append(Metric("16-frame PSNR of repeating the first frame (baseline)",
                          psnr(still, real[:, 1:]).clamp(max=PSNR_CAP).mean().item(), "psnr", DATASET, "dB"))
    return metrics


CARD_USAGE = """import torch
from wm_hub import GeniePipeline

pipe = GeniePipeline.from_pretrained("genie-platformer-64")
session = pipe.start(first_frame)  # a 64x64 RGB image (PIL, uint8 array or tensor)
frame = session.step(2)            # one of pipe.num_actions latent actions -> (64, 64, 3) uint8
video = pipe(first_frame, actions=[2, 2, 5, 0], generator=torch.Generator().manual_seed(0)).frames"""


def write_card(folder, pipe: GeniePipeline, metrics: list[Metric], command: str, training: str) -> None:
    """Write the Genie pipeline's model card into `folder`."""
    from wm_hub.cards import write_model_card

    tok, dyn = pipe.tokenizer.config, pipe.dynamics.config
    write_model_card(
        folder,
        name=folder.name,
        family="genie",
        pipeline_tag="image-to-video",
        summary=(
            "Genie (Bruce et al. 2024) at toy scale: a playable world model of the wm_hub platformer, learned "
            "from its videos alone. An ST-ViViT VQ-VAE tokenizer (codebook "
            f"{tok.codebook_size}, {tok.grid_size}x{tok.grid_size} tokens per 64x64 frame), a latent action model "
            f"with {dyn.num_actions} latent actions, and a MaskGIT dynamics model ({dyn.maskgit_steps} decoding "
            "steps by default). Give it a first frame, then pick a latent action per step."
        ),
        metrics=metrics,
        command=command,
        usage=CARD_USAGE,
        dataset="wm_hub/platformer",
        training=training,
        limitations=(
            "Trained on one procedurally generated 2D platformer at 64x64; it knows nothing else. Latent actions "
            "are discovered, not named: which code means 'right' is read off the agreement numbers above. "
            "Long rollouts drift as errors accumulate (see the 16-frame PSNR), and the tokenizer blurs small "
            "sprites such as coins."
        ),
        config={"tokenizer": tok.to_diff_dict(), "dynamics": dyn.to_diff_dict(),
                "lam": pipe.lam.config.to_diff_dict() if pipe.lam is not None else None},
        tags=["genie", "latent-actions", "maskgit", "platformer"],
    )


def demo(pipe: GeniePipeline, out_dir, name: str, hold: int = 5, steps: int | None = None) -> str:
    """Play a scripted sequence (each latent action held `hold` steps) from a held-out level's first
    frame and write it as a GIF (upscaled 4x); returns a one-line summary."""
    import time
    from pathlib import Path

    from wm_hub.models.genie.play_genie import platformer_prompts

    session = pipe.start(platformer_prompts(1)[0], generator=torch.Generator().manual_seed(0),
                         num_inference_steps=steps)
    begin = time.perf_counter()
    frames = [session.step(a) for a in range(pipe.num_actions) for _ in range(hold)]
    fps = len(frames) / (time.perf_counter() - begin)
    path = write_gif(frames, Path(out_dir) / f"{name}.gif")
    return f"{name}: played {len(frames)} frames at {fps:.1f} frames/s -> {path}"
