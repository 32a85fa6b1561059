"""Train Genie on the platformer's videos (frames only: the recorded true actions are no training signal).

    accelerate launch training/train_genie.py --stage tokenizer --config training/configs/genie_platformer.yaml
    accelerate launch training/train_genie.py --stage lam --config training/configs/genie_platformer.yaml
    accelerate launch training/train_genie.py --stage dynamics --config training/configs/genie_platformer.yaml

The tokenizer and the LAM are independent; the dynamics stage loads both, frozen (stop-gradient).
Each stage resumes with `--resume` and ends by writing a Hub-ready folder `<output_dir>/model` (card,
config, safetensors); the dynamics stage also writes the `GeniePipeline` folder `<output_dir>/pipeline`.
`--init FOLDER` starts a stage from a trained model of that stage (fine-tuning, e.g. on new data, or the
dynamics model against a retrained LAM), whose configuration it keeps; for the dynamics stage it must fit
the config's tokenizer and LAM (vocabulary, token grid, number of latent actions).

The LAM stage selects its checkpoint on validation levels (the config's `lam.validation`, levels the
evaluation never uses): every `validate_every` steps it scores how consistently each true action maps to
one latent code, and keeps the model whose worst score over noop / left / right / jump is highest, among
those that give the four actions four different codes (a LAM whose jump shares noop's code cannot be told
to jump). Those true actions are read for this selection only; no gradient ever sees them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from wm_hub.data import ClipDataset
from wm_hub.envs.platformer import ACTION_NAMES
from wm_hub.metrics import psnr
from wm_hub.models.genie.configuration_genie import DynamicsConfig, GenieTokenizerConfig, LatentActionConfig
from wm_hub.models.genie.evaluation_genie import action_agreement, latent_action_counts
from wm_hub.models.genie.modeling_genie import DynamicsModel, LatentActionModel, VideoTokenizer
from wm_hub.trainer import (
    add_run_arguments,
    load_yaml,
    read_selection,
    run_config,
    train,
    write_snapshot_card,
)


def tokenizer_step(model: VideoTokenizer, batch: dict) -> dict:
    video = batch["frames"]
    out = model(video)
    return {"loss": out.loss, "psnr": psnr(out.reconstruction.detach().clamp(-1, 1), video).mean(),
            "perplexity": out.perplexity, "codes_used": out.codes_used}


def lam_step(model: LatentActionModel, batch: dict) -> dict:
    video = batch["frames"]
    out = model(video)
    return {"loss": out.loss, "psnr": psnr(out.reconstruction.detach().clamp(-1, 1), video[:, 1:]).mean(),
            "perplexity": out.perplexity, "codes_used": out.codes_used}


SELECTION_ACTIONS = ("noop", "left", "right", "jump")


def make_lam_validation(dataset: str, clips: int):
    """Per-action agreement of the LAM's codes on `clips` clips of `dataset`, and the selection metric
    `agreement_min`: their minimum over `SELECTION_ACTIONS`, or 0 when two of those actions share their
    most frequent code (a collapsed codebook agrees trivially: every action maps to the one code in use)."""
    def validate(model: LatentActionModel) -> dict[str, float]:
        counts = latent_action_counts(model, dataset, count=clips)
        shares = action_agreement(counts)
        top = {ACTION_NAMES[a]: c.most_common(1)[0][0] for a, c in counts.items() if c}
        seen = [a for a in SELECTION_ACTIONS if a in top]  # an action never taken has no code
        distinct = len({top[a] for a in seen}) == len(seen)
        return {**{f"agreement_{k}": v for k, v in shares.items()},
                "agreement_min": min(shares[a] for a in seen) if seen and distinct else 0.0}

    return validate


def make_dynamics_step(tokenizer: VideoTokenizer, lam: LatentActionModel):
    def dynamics_step(model: DynamicsModel, batch: dict) -> dict:
        video = batch["frames"]
        with torch.no_grad():  # the tokenizer and the LAM are frozen
            tokens = tokenizer.encode_streaming(video)  # the tokens inference sees past max_frames
            actions = lam.infer_actions(video)
        out = model(tokens, actions)
        return {"loss": out.loss, "accuracy": out.accuracy, "changed_accuracy": out.changed_accuracy}

    return dynamics_step


def selection_note(output_dir: Path, metric: str | None, kept: dict | None) -> str:
    """What the card says of checkpoint selection (`kept`: `read_selection`'s record; '' without one)."""
    return (f"Checkpoint kept at step {kept['step']} of the validated ones, for the highest validation {metric} "
            f"({kept['metrics'][metric]:.3f}; all validation metrics in {output_dir / 'val_log.csv'})."
            if kept else "")


DYNAMICS_TRAINING_FIELDS = {"mask_rate_min", "mask_rate_max", "clean_context_prob", "changed_token_weight"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["tokenizer", "lam", "dynamics"], required=True)
    add_run_arguments(parser, "training/configs/genie_platformer.yaml")
    parser.add_argument("--init", default=None, help="start from this trained model folder of the stage")
    args = parser.parse_args(argv)

    config = load_yaml(args.config)
    stage = config[args.stage]
    train_config = run_config(stage["train"], args)
    clips = ClipDataset(args.data or config["data"]["train"], clip_len=stage["clip_len"])
    frozen: tuple = ()
    validate = None
    if args.stage == "tokenizer":
        model = (VideoTokenizer.from_pretrained(args.init) if args.init else
                 VideoTokenizer(GenieTokenizerConfig(**stage["model"], max_frames=stage["clip_len"])))
        step_fn = tokenizer_step
    elif args.stage == "lam":
        model = (LatentActionModel.from_pretrained(args.init) if args.init else
                 LatentActionModel(LatentActionConfig(**stage["model"])))
        step_fn = lam_step
        if "validation" in stage:
            validate = make_lam_validation(stage["validation"]["data"], stage["validation"]["clips"])
    else:
        tokenizer = VideoTokenizer.from_pretrained(stage["tokenizer"])
        lam = LatentActionModel.from_pretrained(stage["lam"])
        expected = {"vocab_size": tokenizer.config.codebook_size, "grid_size": tokenizer.config.grid_size,
                    "num_actions": lam.config.num_actions}
        if args.init:
            model = DynamicsModel.from_pretrained(args.init)
            found = {k: getattr(model.config, k) for k in expected}
            if found != expected:
                parser.error(f"--init {args.init}: a dynamics model with {found}, but the config's tokenizer and "
                             f"LAM need {expected}")
            # the config's training knobs apply to a fine-tune; its architecture is the --init model's
            for key in DYNAMICS_TRAINING_FIELDS & stage["model"].keys():
                setattr(model.config, key, stage["model"][key])
        else:
            model = DynamicsModel(DynamicsConfig(**stage["model"], **expected, max_frames=stage["clip_len"]))
        step_fn, frozen = make_dynamics_step(tokenizer, lam), (tokenizer, lam)

    model = train(model, clips, step_fn, train_config, resume=args.resume, frozen=frozen, validate=validate)

    out = Path(train_config.output_dir)
    if not PartialState().is_main_process:
        return 0
    model.save_pretrained(out / "model")
    metric_name = "accuracy" if args.stage == "dynamics" else "psnr"
    kept = read_selection(out) if train_config.select_metric else None
    write_snapshot_card(
        out / "model", train_config, script="training/train_genie.py", argv=argv, metric=metric_name,
        kind=metric_name, dataset="wm_hub/platformer-train", until_step=kept["step"] if kept else None,
        name=f"genie-{args.stage}-platformer", family="genie", pipeline_tag="image-to-video",
        summary=f"Genie {args.stage} trained on the wm_hub platformer (frames only). A training snapshot: "
                f"the evaluated release is the `genie-platformer-64` pipeline.",
        usage=f"from wm_hub.models.genie import {type(model).__name__}\n"
              f"model = {type(model).__name__}.from_pretrained('{out / 'model'}')",
        training=selection_note(out, train_config.select_metric, kept),
        limitations="Training-set numbers only; see the pipeline card for held-out evaluation.",
        config=model.config.to_dict(),
    )
    if args.stage == "dynamics":
        from wm_hub.models.genie.pipeline_genie import GeniePipeline

        GeniePipeline(tokenizer=tokenizer, dynamics=model, lam=lam).save_pretrained(out / "pipeline")
    print(f"wrote {out / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
