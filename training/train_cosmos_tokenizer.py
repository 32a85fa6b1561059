"""Train a Cosmos-style causal video tokenizer on the captioned physics clips.

    wm-hub data make physics --num-clips 2000 --out data/physics-train
    accelerate launch training/train_cosmos_tokenizer.py --variant continuous --stage 1
    accelerate launch training/train_cosmos_tokenizer.py --variant continuous --stage 2
    accelerate launch training/train_cosmos_tokenizer.py --variant discrete --stage 1 --compression 8x8x8

Stage 1: L1 reconstruction, plus an MSE term (`loss_weights: {mse: ...}`): on these clips, mostly flat
background around small objects, L1's sign gradients from the almost-right background drown out the objects'
(an 8-clip overfit reached 21.0 dB in 300 steps with L1 alone, 24.9 dB with L1 + MSE). Stage 2 (from stage
1's weights) adds, as the Cosmos report describes, a temporal-smoothness loss and a Gram-matrix (texture /
sharpness) loss. We have no optical-flow network or VGG here (nothing is downloaded), so the temporal loss
matches frame differences of reconstruction and input (a flow-free stand-in), and the Gram matrices are of
4x4 pixel-patch features at two scales.
Both stages resume with `--resume` and end by writing a Hub-ready folder `<output_dir>/model`; the
continuous variant's latent normalisation stats are measured on training clips and stored in its config.
`--init FOLDER` starts from a trained tokenizer (e.g. a shipped one, to train it further).
`--compression TxSxS` (default 4x8x8) sets the temporal and spatial factors; clips hold 1 + `latent_groups`
(the config's, or `--latent-groups`) groups of T frames, and `{name}` in the config's folders becomes e.g.
`cv4x8x8` or `dv8x8x8`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import PartialState

from wm_hub.data import ClipDataset
from wm_hub.metrics import psnr
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.trainer import add_run_arguments, load_yaml, run_config, train, write_snapshot_card


def temporal_loss(reconstruction: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """L1 between frame differences of reconstruction and input `(B, T, C, H, W)`."""
    return F.l1_loss(reconstruction.diff(dim=1), video.diff(dim=1))


def gram_loss(reconstruction: torch.Tensor, video: torch.Tensor, patch: int = 4) -> torch.Tensor:
    """L1 between Gram matrices of 4x4 pixel-patch features, at full and half resolution."""
    total = reconstruction.new_zeros(())
    a, b = reconstruction.flatten(0, 1), video.flatten(0, 1)  # (B*T, C, H, W)
    for _ in range(2):
        fa = F.unfold(a, patch, stride=patch)  # (N, C*p*p, L)
        fb = F.unfold(b, patch, stride=patch)
        total = total + F.l1_loss(fa @ fa.transpose(1, 2) / fa.shape[-1], fb @ fb.transpose(1, 2) / fb.shape[-1])
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return total


def make_step(stage: int, weights: dict[str, float]):
    def step(model: CausalVideoTokenizer, batch: dict) -> dict:
        video = batch["frames"]
        reconstruction = model(video).sample
        logs = {"l1": F.l1_loss(reconstruction, video), "mse": F.mse_loss(reconstruction, video)}
        loss = logs["l1"] + weights.get("mse", 0.0) * logs["mse"]
        if stage == 2:
            logs["temporal"] = temporal_loss(reconstruction, video)
            logs["gram"] = gram_loss(reconstruction, video)
            loss = loss + weights["temporal"] * logs["temporal"] + weights["gram"] * logs["gram"]
        logs["psnr"] = psnr(reconstruction.detach().clamp(-1, 1), video).mean()
        return {"loss": loss, **logs}

    return step


@torch.no_grad()
def latent_stats(model: CausalVideoTokenizer, clips: ClipDataset, count: int = 64) -> tuple[list, list]:
    """Per-channel mean and std of the raw (unnormalised) latents of `count` training clips."""
    model.eval().register_to_config(latents_mean=None, latents_std=None)
    picks = range(min(count, len(clips)))
    device = next(model.parameters()).device
    latents = torch.cat([model.encode(clips[i]["frames"][None].to(device)).latent_dist.mode() for i in picks])
    channels = latents.transpose(0, 2).flatten(1)  # (C', everything else)
    return channels.mean(1).tolist(), channels.std(1).clamp_min(1e-4).tolist()


def parse_compression(text: str) -> tuple[int, int]:
    """"4x8x8" -> (4, 8): temporal and spatial compression."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[1] != parts[2]:
        raise argparse.ArgumentTypeError(f"expected TxSxS with equal spatial factors (e.g. 4x8x8), got {text!r}")
    return int(parts[0]), int(parts[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=["continuous", "discrete"], required=True)
    parser.add_argument("--stage", type=int, choices=[1, 2], required=True)
    parser.add_argument("--compression", type=parse_compression, default=(4, 8), metavar="TxSxS",
                        help="temporal x spatial x spatial compression (default 4x8x8)")
    parser.add_argument("--init", default=None,
                        help="start from this tokenizer's weights (stage 1: instead of new ones; stage 2: instead of "
                             "the config's stage-1 model), e.g. a shipped one to train it further")
    parser.add_argument("--latent-groups", type=int, default=None, metavar="N",
                        help="train on clips of 1 + N groups of frames (default: the config's latent_groups)")
    add_run_arguments(parser, "training/configs/cosmos_tokenizer_physics.yaml")
    args = parser.parse_args(argv)

    config = load_yaml(args.config)
    variant = config[args.variant]
    stage = variant[f"stage{args.stage}"]
    temporal, spatial = args.compression
    name = f"{args.variant[0]}v{temporal}x{spatial}x{spatial}"  # cv4x8x8, dv8x8x8, ...
    portable = stage["train"].get("portable_dir")
    train_config = run_config(stage["train"], args,
                              output_dir=args.output_dir or stage["train"]["output_dir"].format(name=name),
                              portable_dir=portable.format(name=name) if portable else None)
    groups = args.latent_groups or variant["latent_groups"]
    clips = ClipDataset(args.data or config["data"]["train"], clip_len=1 + groups * temporal, in_memory=True)
    init = args.init or (stage["init"].format(name=name) if args.stage == 2 else None)
    if init is None:
        model = CausalVideoTokenizer(**{**variant["model"], "temporal_compression": temporal,
                                        "spatial_compression": spatial}, quantizer=args.variant)
    else:
        model = CausalVideoTokenizer.from_pretrained(init)
        found = (model.config.temporal_compression, model.config.spatial_compression)
        if found != (temporal, spatial) or model.config.quantizer != args.variant:
            raise ValueError(f"{init} is a {model.config.quantizer} tokenizer compressing {found}, expected "
                             f"{args.variant} {(temporal, spatial)} (--variant, --compression)")
    step_fn = make_step(args.stage, stage.get("loss_weights", {}))
    model = train(model, clips, step_fn, train_config, resume=args.resume)
    if not PartialState().is_main_process:
        return 0
    out = Path(train_config.output_dir)
    if args.variant == "continuous":
        mean, std = latent_stats(model, clips)
        model.register_to_config(latents_mean=mean, latents_std=std)
    model.save_pretrained(out / "model")
    write_snapshot_card(
        out / "model", train_config, script="training/train_cosmos_tokenizer.py", argv=argv, metric="psnr",
        label="PSNR", kind="psnr", unit="dB", dataset="wm_hub/physics-train",
        name=f"cosmos-tokenizer-{name}-stage{args.stage}", family="cosmos", pipeline_tag="feature-extraction",
        summary=f"Cosmos-style causal video tokenizer ({args.variant}), training snapshot after stage {args.stage}.",
        usage="from wm_hub import CausalVideoTokenizer\n"
              f"tokenizer = CausalVideoTokenizer.from_pretrained('{out / 'model'}')",
        training=f"Clips of {clips.clip_len} frames.",
        limitations="Training-set numbers only; the evaluated release cards report held-out numbers.",
        config=dict(model.config),
    )
    print(f"wrote {out / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
