"""Fine-tune a Cosmos-style world model for control, as Cosmos post-trains its world models: the shared code of
`finetune_camera.py` (Plücker camera rays) and `finetune_action.py` (per-step actions), for the diffusion model
(a `Video2WorldPipeline` base) and the autoregressive one (an `ARVideo2WorldPipeline` base).

    wm-hub data make camera --num-clips 1000 --workers 2 --out data/camera-train
    accelerate launch training/finetune_camera.py --base cosmos-dit-physics-64 --data data/camera-train

    wm-hub data make physics --agent pusher --frames 17 --num-clips 1000 --out data/push-train
    accelerate launch training/finetune_action.py --base cosmos-dit-physics-64 --data data/push-train
    accelerate launch training/finetune_action.py --config training/configs/cosmos_ar_action.yaml   # autoregressive

The base pipeline's world model is extended with the control input (its new layers start at zero, so training
starts from the base model's behaviour); with `lora_rank` > 0 the base weights stay frozen and LoRA adapters
(peft) learn the change, the new layers in full; with 0 every weight of the world model is trained. The tokenizer
and the text encoder stay frozen; `tokenizer` in the config (or `--tokenizer`) swaps the base pipeline's for
another with the same latents, e.g. one fine-tuned on the new domain's frames, and the written pipeline keeps it.
Clips are encoded once by the tokenizer (kept beside the run with their cameras / actions). The diffusion model
trains every clip as Video2World from its first latent frame (`edm` in the config); the autoregressive one
predicts every token after the first `ar.context_frames` latent frames, each position told the control of the
token it predicts. Resumes with `--resume`; ends by writing `<output_dir>/pipeline` (adapters merged), a
pipeline folder of the base's kind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import train_cosmos_ar
import train_cosmos_dit
from accelerate import PartialState

from wm_hub.data import ClipDataset, EncodedClips, encoder_key
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.finetuning_cosmos import (
    add_lora,
    control_inputs,
    extend_for_control,
    load_video2world,
    merge_lora,
)
from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline, Video2WorldPipeline
from wm_hub.trainer import add_run_arguments, load_yaml, run_config, train, write_snapshot_card

# The clip items each control is trained on (kept with the encoded clips)
CONTROLS = {"camera": ("intrinsics", "camera_pose"), "action": ("actions",)}


def swap_tokenizer(base, folder: str | None) -> CausalVideoTokenizer:
    """The base pipeline's tokenizer, or the one in `folder` if given (checked against the world model's latents)."""
    if folder is None:
        return base.vae
    vae = CausalVideoTokenizer.from_pretrained(folder)

    def latents(c) -> tuple:
        return (c.latent_channels, c.temporal_compression, c.spatial_compression, c.quantizer, tuple(c.fsq_levels))

    if latents(vae.config) != latents(base.vae.config):
        raise ValueError(f"tokenizer {folder} gives (channels, temporal, spatial compression, quantizer, FSQ levels) "
                         f"{latents(vae.config)}; the base world model was trained on {latents(base.vae.config)}")
    return vae


def main(control: str, argv: list[str] | None = None) -> int:
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {sorted(CONTROLS)}, got {control!r}")
    extras = CONTROLS[control]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, f"training/configs/cosmos_dit_{control}.yaml")
    parser.add_argument("--base", default=None, help="the base pipeline: a shipped name or a folder (default: the "
                                                     "config's)")
    parser.add_argument("--lora-rank", type=int, default=None,
                        help="LoRA rank on the frozen base weights; 0 trains all of them (default: the config's)")
    parser.add_argument("--tokenizer", default=None,
                        help="a tokenizer folder to use instead of the base pipeline's (default: the config's "
                             "`tokenizer`, else the base pipeline's)")
    args = parser.parse_args(argv)

    config = load_yaml(args.config)
    train_config = run_config(config["train"], args)
    data = args.data or config["data"]["train"]
    state = PartialState()
    base = load_video2world(args.base or config["base"])
    ar = isinstance(base, ARVideo2WorldPipeline)
    clips = ClipDataset(data, clip_len=config["clip_len"], in_memory=True)
    if control == "camera" and not {"intrinsics", "camera_pose"} <= set(clips.data.column_names):
        raise ValueError(f"{data} has no cameras (intrinsics, camera_pose): make it with `wm-hub data make camera`")
    vae = swap_tokenizer(base, args.tokenizer or config.get("tokenizer")).to(state.device)
    frames_per_latent = vae.config.temporal_compression
    if control == "camera":
        world = extend_for_control(base.transformer, camera=True, frames_per_latent=frames_per_latent)
    else:
        world = extend_for_control(base.transformer, action_dim=int(clips[0]["actions"].shape[-1]),
                                   frames_per_latent=frames_per_latent)
    encode = vae.tokenize if ar else (lambda video: vae.encode(video).latent_dist.mode())
    with state.main_process_first():
        latents = EncodedClips(clips, encode, device=state.device,
                               cache=Path(train_config.output_dir) / "latents.safetensors",
                               key=encoder_key(vae, data, clips.clip_len), extras=extras)
    vae.to("cpu")
    rank = config["lora_rank"] if args.lora_rank is None else args.lora_rank
    text_encoder = base.text_encoder.requires_grad_(False) if base.text_encoder is not None else None
    image_size, grid_size = base.image_size, base.latent_size

    def controls(batch: dict) -> dict:
        return control_inputs(batch, world, image_size, grid_size)

    trainable = add_lora(world, rank) if rank else world
    if ar:
        section = config["ar"]
        step_fn = train_cosmos_ar.make_step(section["context_frames"], world.config.tokens_per_frame, base.tokenizer,
                                            section.get("caption_dropout", 1.0), train_config.seed, control=controls)
        model = train_cosmos_ar.TextConditionedAR(trainable, text_encoder) if text_encoder is not None else trainable
    else:
        step_fn = train_cosmos_dit.make_step(base.tokenizer, base.scheduler, config["edm"],
                                             world.config.conditioning_sigma, train_config.seed, control=controls)
        model = train_cosmos_dit.TextConditionedDenoiser(trainable, text_encoder)
    model = train(model, latents, step_fn, train_config, resume=args.resume)

    if not state.is_main_process:
        return 0
    out = Path(train_config.output_dir) / "pipeline"
    if ar:
        trained = merge_lora(model.model if text_encoder is not None else model)
    else:
        trained = merge_lora(model.transformer)
    if ar:
        pipe = ARVideo2WorldPipeline(transformer=trained, vae=vae, text_encoder=text_encoder, tokenizer=base.tokenizer)
    else:
        pipe = Video2WorldPipeline(transformer=trained, vae=vae, scheduler=base.scheduler, text_encoder=text_encoder,
                                   tokenizer=base.tokenizer)
    pipe.save_pretrained(out)
    how = f"LoRA rank {rank} on the frozen base weights" if rank else "every weight of the world model trained"
    kind, cls = ("ar", "ARVideo2WorldPipeline") if ar else ("dit", "Video2WorldPipeline")
    metric, label, metric_kind = ("perplexity", "next-token perplexity", "perplexity") if ar else \
        ("latent_mse", "latent MSE", "mse")
    write_snapshot_card(
        out, train_config, script=f"training/finetune_{control}.py", argv=argv, metric=metric, label=label,
        kind=metric_kind, dataset=data, name=f"cosmos-{kind}-{control}-snapshot", family="cosmos",
        pipeline_tag="image-to-video",
        summary=(f"Cosmos-style {'autoregressive' if ar else 'DiT'} world model fine-tuned for {control} control "
                 f"({how}), training snapshot."),
        usage=f"from wm_hub import {cls}\npipe = {cls}.from_pretrained('{out}')",
        limitations="Training-set numbers only; the evaluated release card reports held-out numbers.",
        config={"transformer": pipe.transformer.config.to_diff_dict() if ar else dict(pipe.transformer.config)},
    )
    print(f"wrote {out}")
    return 0
