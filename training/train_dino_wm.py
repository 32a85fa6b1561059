"""Train DINO-WM on an environment's offline trajectories, in two stages.

    wm-hub data make dino-wm-wall --episodes 1000 --out data/dino-wm-wall-train
    accelerate launch training/train_dino_wm.py --env wall --stage encoder
    accelerate launch training/train_dino_wm.py --env wall --stage predictor
    accelerate launch training/train_dino_wm.py --env wall --stage decoder

1. `encoder`: `facebook/dinov2-small` cannot be downloaded here, so a small `Dinov2Model` is pre-trained
   self-supervised on the dataset's frames (DINO + iBOT, `wm_hub.models.dino_wm.ssl_dino_wm`; with the ssl
   config's `slowness_weight`, also slowness along sequences of `slowness_frames` frames `slowness_gap` steps
   apart, DINO and iBOT then seeing each sequence's first frame); the EMA teacher follows a cosine momentum
   schedule. Writes the student as a Hub-ready Dinov2 folder.
2. `predictor`: the encoder (the config's `encoder` folder) is loaded and frozen, and every clip of
   `clip_frames` frames `frame_skip` steps apart (a plan's horizon + 1: the predictor attends over `history`
   frames per layer, so longer clips train the rollout) is encoded once, in float16 (kept beside the run in
   `features.safetensors`); the predictor learns from those features, teacher-forced, with an L2 loss on the
   next frames' patch features (and proprio; the config's `rollout_loss_weight`, or `--rollout-loss-weight`,
   adds the same loss along an open-loop rollout from each clip's first frame). Writes a `DinoWMModel` folder.
3. `decoder`: the picture decoder of the predictor stage's model (the config's `model` folder) learns to
   reconstruct single frames from their patch features; everything else stays frozen. Writes the whole
   `DinoWMModel` folder.
All resume with `--resume` and keep a float16 portable state (`portable_dir`) to commit.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from accelerate import PartialState
from transformers import Dinov2Config, Dinov2Model

from wm_hub.data import ClipDataset, EncodedClips, encoder_key
from wm_hub.models.dino_wm.configuration_dino_wm import DinoWMConfig
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel
from wm_hub.models.dino_wm.ssl_dino_wm import DinoSelfSupervision, DinoSSLConfig
from wm_hub.trainer import add_run_arguments, load_yaml, run_config, train, write_snapshot_card


def encoder_step(model: DinoSelfSupervision, batch: dict) -> dict:
    frames = batch["frames"]  # (B, 1, C, H, W), or (B, L, ...) sequences for the slowness term
    return model(frames[:, 0], sequences=frames if frames.shape[1] > 1 else None)


def teacher_schedule(momentum: tuple[float, float], steps: int):
    """After each step: EMA update of the teacher, momentum rising from `momentum[0]` to `momentum[1]`
    along a cosine (DINO)."""
    low, high = momentum

    def after_step(model: DinoSelfSupervision, step: int) -> None:
        model.update_teacher(high - (high - low) * (1 + math.cos(math.pi * step / steps)) / 2)

    return after_step


def predictor_step(model: DinoWMModel, batch: dict) -> dict:
    out = model(None, batch["actions"], batch.get("proprio"), features=batch["latents"])
    names = ("loss", "prediction_loss", "proprio_loss", "rollout_loss")
    return {name: out[name] for name in names if out.get(name) is not None}


def decoder_step(model: DinoWMModel, batch: dict) -> dict:
    return {"loss": model.reconstruct(batch["frames"]).loss}


def encoded_clips(model: DinoWMModel, data: str, clip_frames: int, out: Path) -> EncodedClips:
    """Every clip's frames through the frozen encoder once (float16 `(T, N, E)` per clip), with its actions
    and proprio; cached in `out/features.safetensors` for resumed runs."""
    clips = ClipDataset(data, clip_len=clip_frames, frame_skip=model.config.frame_skip, in_memory=True)
    extras = ("actions", "proprio") if model.config.proprio_dim else ("actions",)
    state = PartialState()
    model.encoder.to(state.device)
    with state.main_process_first():
        return EncodedClips(clips, lambda frames: model.encode(frames).half(), batch_size=64, device=state.device,
                            cache=out / "features.safetensors", extras=extras,
                            key=encoder_key(model.encoder, data, clip_frames, model.config.frame_skip))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="wall", help="picks training/configs/dino_wm_<env>.yaml")
    parser.add_argument("--stage", choices=["encoder", "predictor", "decoder"], required=True)
    parser.add_argument("--rollout-loss-weight", type=float, default=None,
                        help="predictor stage: override the model config's rollout_loss_weight (e.g. to go on, "
                             "with --resume, training along open-loop rollouts)")
    add_run_arguments(parser, default_config="")
    args = parser.parse_args(argv)

    config = load_yaml(args.config or f"training/configs/dino_wm_{args.env}.yaml")
    stage = config[args.stage]
    train_config = run_config(stage["train"], args)
    data = args.data or config["data"]["train"]
    out = Path(train_config.output_dir)
    if args.stage == "encoder":
        ssl = DinoSSLConfig(**stage.get("ssl", {}))
        slow = ssl.slowness_weight > 0
        clips = ClipDataset(data, clip_len=ssl.slowness_frames if slow else 1,
                            frame_skip=ssl.slowness_gap if slow else 1)
        model = DinoSelfSupervision(Dinov2Model(Dinov2Config(**stage["model"])), ssl)
        after = teacher_schedule(tuple(stage["teacher_momentum"]), train_config.steps)
        model = train(model, clips, encoder_step, train_config, resume=args.resume, after_step=after)
        # the iBOT (masked-patch) loss: the patch features are what DINO-WM plans on; on these frames, one
        # small agent on a fixed room, the image-level DINO loss stays near ln(num_prototypes)
        result, metric = model.student, "ibot_loss"
        objectives = "DINO + iBOT + slowness" if slow else "DINO + iBOT"
        summary = (f"Dinov2 encoder pre-trained self-supervised ({objectives}) on {args.env} frames, for DINO-WM. "
                   "A training snapshot: the evaluated release is the DINO-WM folder that embeds it.")
    elif args.stage == "predictor":
        encoder = Dinov2Model.from_pretrained(stage["encoder"])
        settings = dict(stage["model"])
        if args.rollout_loss_weight is not None:
            settings["rollout_loss_weight"] = args.rollout_loss_weight
        model_config = DinoWMConfig(**settings, encoder_config=encoder.config.to_dict(),
                                    encoder_name_or_path=stage["encoder"])
        model = DinoWMModel(model_config)
        model.encoder.load_state_dict(encoder.state_dict())
        features = encoded_clips(model, data, stage["clip_frames"], out)
        result = train(model, features, predictor_step, train_config, resume=args.resume)
        metric = "prediction_loss"
        summary = (f"DINO-WM on {args.env}: predictor over a frozen Dinov2 encoder (its decoder is trained by the "
                   "decoder stage). A training snapshot: see the shipped card for planning success rates.")
    else:
        model = DinoWMModel.from_pretrained(stage["model"])
        if model.decoder is None:
            raise ValueError(f"{stage['model']} has no decoder (config.use_decoder=False): nothing to train")
        model.requires_grad_(False)
        model.decoder.requires_grad_(True)
        clips = ClipDataset(data, clip_len=1, in_memory=True)
        result = train(model, clips, decoder_step, train_config, resume=args.resume)
        metric = "loss"
        summary = (f"DINO-WM on {args.env}: the predictor stage's model with its picture decoder trained. A "
                   "training snapshot: see the shipped card for planning success rates.")
    if not PartialState().is_main_process:
        return 0
    result.save_pretrained(out / "model")
    write_snapshot_card(
        out / "model", train_config, script="training/train_dino_wm.py", argv=argv, metric=metric, kind="loss",
        label=metric, dataset=f"wm_hub/dino-wm-{args.env}-train", name=f"dino-wm-{args.env}-{args.stage}",
        family="dino_wm", pipeline_tag="image-feature-extraction", summary=summary,
        usage=f"from transformers import AutoModel\nmodel = AutoModel.from_pretrained('{out / 'model'}')",
        config=result.config.to_dict(),
    )
    print(f"wrote {out / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
