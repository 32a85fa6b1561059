"""Fine-tune the diffusion world model for control, as Cosmos post-trains its world models: the shared code of
`finetune_camera.py` (Plücker camera rays) and `finetune_action.py` (per-step actions).

    wm-hub data make camera --num-clips 1000 --workers 2 --out data/camera-train
    accelerate launch training/finetune_camera.py --base cosmos-dit-physics-64 --data data/camera-train

    wm-hub data make physics --agent pusher --frames 17 --num-clips 1000 --out data/push-train
    accelerate launch training/finetune_action.py --base cosmos-dit-physics-64 --data data/push-train

The base pipeline's transformer is extended with the control input (its new layers start at zero, so training
starts from the base model's behaviour); with `lora_rank` > 0 the base weights stay frozen and LoRA adapters
(peft) learn the change, the new layers in full; with 0 every transformer weight is trained. The tokenizer and
the text encoder stay frozen; `tokenizer` in the config (or `--tokenizer`) swaps the base pipeline's for another
with the same latent shape, e.g. one fine-tuned on the new domain's frames, and the written pipeline keeps it.
Clips are encoded once by the tokenizer (kept beside the run with their cameras / actions). Every clip is trained
as Video2World from its first latent frame (`edm` in the config). Resumes with `--resume`; ends by writing
`<output_dir>/pipeline` (adapters merged), a `Video2WorldPipeline` folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accelerate import PartialState
from train_cosmos_dit import TextConditionedDenoiser, make_step

from wm_hub.data import ClipDataset, EncodedClips, encoder_key
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.finetuning_cosmos import add_lora, control_inputs, extend_for_control, merge_lora
from wm_hub.models.cosmos.pipeline_cosmos import Video2WorldPipeline
from wm_hub.trainer import add_run_arguments, load_yaml, run_config, train, write_snapshot_card

# The clip items each control is trained on (kept with the encoded clips)
CONTROLS = {"camera": ("intrinsics", "camera_pose"), "action": ("actions",)}


def swap_tokenizer(base: Video2WorldPipeline, folder: str | None) -> CausalVideoTokenizer:
    """The base pipeline's tokenizer, or the one in `folder` if given (checked against the transformer's latents)."""
    if folder is None:
        return base.vae
    vae = CausalVideoTokenizer.from_pretrained(folder)
    new, old = vae.config, base.vae.config
    found = (new.latent_channels, new.temporal_compression, new.spatial_compression, new.quantizer)
    expected = (old.latent_channels, old.temporal_compression, old.spatial_compression, old.quantizer)
    if found != expected:
        raise ValueError(f"tokenizer {folder} gives (channels, temporal, spatial compression, quantizer) {found}; "
                         f"the base transformer was trained on {expected}")
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
    base = Video2WorldPipeline.from_pretrained(args.base or config["base"])
    clips = ClipDataset(data, clip_len=config["clip_len"], in_memory=True)
    if control == "camera" and not {"intrinsics", "camera_pose"} <= set(clips.data.column_names):
        raise ValueError(f"{data} has no cameras (intrinsics, camera_pose): make it with `wm-hub data make camera`")
    vae = swap_tokenizer(base, args.tokenizer or config.get("tokenizer")).to(state.device)
    frames_per_latent = vae.config.temporal_compression
    if control == "camera":
        transformer = extend_for_control(base.transformer, camera=True, frames_per_latent=frames_per_latent)
    else:
        transformer = extend_for_control(base.transformer, action_dim=int(clips[0]["actions"].shape[-1]),
                                         frames_per_latent=frames_per_latent)
    with state.main_process_first():
        latents = EncodedClips(clips, lambda video: vae.encode(video).latent_dist.mode(), device=state.device,
                               cache=Path(train_config.output_dir) / "latents.safetensors",
                               key=encoder_key(vae, data, clips.clip_len), extras=extras)
    vae.to("cpu")
    rank = config["lora_rank"] if args.lora_rank is None else args.lora_rank
    text_encoder = base.text_encoder.requires_grad_(False)
    image_size = base.image_size
    step_fn = make_step(base.tokenizer, base.scheduler, config["edm"], transformer.config.conditioning_sigma,
                        train_config.seed, control=lambda batch: control_inputs(batch, transformer, image_size))
    model = TextConditionedDenoiser(add_lora(transformer, rank) if rank else transformer, text_encoder)
    model = train(model, latents, step_fn, train_config, resume=args.resume)

    if not state.is_main_process:
        return 0
    out = Path(train_config.output_dir) / "pipeline"
    pipe = Video2WorldPipeline(transformer=merge_lora(model.transformer), vae=vae, scheduler=base.scheduler,
                               text_encoder=text_encoder, tokenizer=base.tokenizer)
    pipe.save_pretrained(out)
    how = f"LoRA rank {rank} on the frozen base weights" if rank else "every transformer weight trained"
    write_snapshot_card(
        out, train_config, script=f"training/finetune_{control}.py", argv=argv, metric="latent_mse",
        label="latent MSE", kind="mse", dataset=data, name=f"cosmos-dit-{control}-snapshot", family="cosmos",
        pipeline_tag="image-to-video",
        summary=f"Cosmos-style DiT world model fine-tuned for {control} control ({how}), training snapshot.",
        usage=f"from wm_hub import Video2WorldPipeline\npipe = Video2WorldPipeline.from_pretrained('{out}')",
        limitations="Training-set numbers only; the evaluated release card reports held-out numbers.",
        config={"transformer": dict(pipe.transformer.config)},
    )
    print(f"wrote {out}")
    return 0
