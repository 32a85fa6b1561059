"""Train the Cosmos-style diffusion world model (DiT + text encoder) on the captioned physics clips.

    wm-hub data make physics --num-clips 2000 --out data/physics-train
    accelerate launch training/train_cosmos_dit.py --config training/configs/cosmos_dit_physics.yaml

The clips are encoded by the frozen continuous causal tokenizer (`vae` in the config); the DiT learns the
EDM denoiser of their normalised latents (log-normal noise levels, EDM loss weighting), with the T5 text
encoder trained alongside it from scratch (nothing pretrained can be downloaded here; the captions are
a small closed vocabulary). Captions are dropped at random (classifier-free guidance), and for a share of
the clips the first latent frames are given clean (with a small noise level of their own and the
condition mask set), so one model serves Text2World and Video2World. Resumes with `--resume`; ends by
writing the pipeline folder `<output_dir>/pipeline`, which both pipelines load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from diffusers import EDMEulerScheduler
from torch import Tensor, nn
from transformers import T5EncoderModel

from wm_hub.data import ClipDataset, EncodedClips, encoder_key
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.pipeline_cosmos import Text2WorldPipeline
from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config
from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel
from wm_hub.trainer import add_run_arguments, load_yaml, run_config, train, write_snapshot_card


class TextConditionedDenoiser(nn.Module):
    """What the trainer optimises: the DiT and the text encoder, run together in one forward so that
    distributed training sees every parameter."""

    def __init__(self, transformer: WorldTransformer3DModel, text_encoder: T5EncoderModel) -> None:
        super().__init__()
        self.transformer, self.text_encoder = transformer, text_encoder

    def forward(self, model_in: Tensor, c_noise: Tensor, input_ids: Tensor, attention_mask: Tensor,
                condition_mask: Tensor, **control: Tensor) -> Tensor:
        text = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.transformer(model_in, c_noise, text, attention_mask, condition_mask, **control).sample


def make_step(tokenizer, scheduler: EDMEulerScheduler, edm: dict, conditioning_sigma: float, seed: int,
              control=None):
    """The EDM training step on batches of normalised tokenizer latents `(B, T, C, H, W)` and captions: `edm`
    holds p_mean, p_std, caption_dropout, condition_prob and max_condition_frames; given frames get
    `conditioning_sigma` (the transformer's). `control(batch)`, if given, returns the transformer's control
    inputs (camera / actions) for the batch (fine-tuning for control)."""
    rng = torch.Generator().manual_seed(seed)
    sigma_data = scheduler.config.sigma_data

    def step(model: nn.Module, batch: dict) -> dict:
        latents = batch["latents"]
        B, T = latents.shape[:2]
        device = latents.device
        # Captions, some dropped (an empty text: eos only) for classifier-free guidance
        keep = torch.rand(B, generator=rng) >= edm["caption_dropout"]
        captions = [c if k else "" for c, k in zip(batch.get("caption", [""] * B), keep.tolist(), strict=True)]
        text = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt").to(device)
        # Conditioning: for a share of clips, the first 1..max_condition_frames latent frames are given
        given = torch.randint(1, edm["max_condition_frames"] + 1, (B,), generator=rng)
        given = torch.where(torch.rand(B, generator=rng) < edm["condition_prob"], given, 0).clamp(max=T - 1)
        condition_mask = (torch.arange(T)[None] < given[:, None]).float().to(device)  # (B, T)
        # Noise levels: log-normal per clip; the given frames get the small conditioning level
        sigma = torch.exp(torch.randn(B, generator=rng) * edm["p_std"] + edm["p_mean"]).to(device)
        frame_sigma = torch.where(condition_mask.bool(), conditioning_sigma, sigma[:, None])  # (B, T)
        s = frame_sigma[:, :, None, None, None]
        noisy = latents + s * torch.randn(latents.shape, generator=rng).to(device)
        extra = {k: v.to(device) for k, v in control(batch).items()} if control is not None else {}
        out = model(scheduler.precondition_inputs(noisy, s), scheduler.precondition_noise(frame_sigma),
                    text["input_ids"], text["attention_mask"], condition_mask, **extra)
        denoised = scheduler.precondition_outputs(noisy, out, s)
        weight = (s**2 + sigma_data**2) / (s * sigma_data) ** 2  # EDM's lambda(sigma)
        error = (weight * (denoised - latents) ** 2).mean(dim=(2, 3, 4))  # (B, T)
        generated = 1 - condition_mask
        loss = (error * generated).sum() / generated.sum().clamp_min(1)
        plain = ((denoised - latents) ** 2).mean(dim=(2, 3, 4))
        return {"loss": loss, "latent_mse": ((plain * generated).sum() / generated.sum().clamp_min(1)).detach()}

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "training/configs/cosmos_dit_physics.yaml")
    args = parser.parse_args(argv)

    config = load_yaml(args.config)
    train_config = run_config(config["train"], args)
    data = args.data or config["data"]["train"]
    clips = ClipDataset(data, clip_len=config["clip_len"], in_memory=True)
    if "caption" not in clips.data.column_names:
        raise ValueError(f"{data} has no captions: make it with `wm-hub data make physics`")
    vae = CausalVideoTokenizer.from_pretrained(config["vae"]).to(PartialState().device)
    if vae.config.quantizer != "continuous" or vae.config.latents_std is None:
        raise ValueError(f"{config['vae']} is not a continuous tokenizer with latent stats: the DiT needs one")
    # The caption vocabulary is the training set's, sorted: the same tokenizer on every resume.
    tokenizer = build_caption_tokenizer(clips.data["caption"], model_max_length=config["text"]["max_length"])
    text_encoder = T5EncoderModel(caption_encoder_config(tokenizer, **config["text"]["encoder"]))
    s = vae.config.spatial_compression
    transformer = WorldTransformer3DModel(**config["model"], in_channels=vae.config.latent_channels,
                                          sample_size=clips[0]["frames"].shape[-1] // s,
                                          text_dim=text_encoder.config.d_model)
    scheduler = EDMEulerScheduler(**config["scheduler"])
    # The tokenizer is frozen and its latents' mode is deterministic: encode every clip once (kept beside the run)
    state = PartialState()
    with state.main_process_first():
        latents = EncodedClips(clips, lambda video: vae.encode(video).latent_dist.mode(), device=state.device,
                               cache=Path(train_config.output_dir) / "latents.safetensors",
                               key=encoder_key(vae, data, clips.clip_len))
    vae.to("cpu")
    step_fn = make_step(tokenizer, scheduler, config["edm"], transformer.config.conditioning_sigma, train_config.seed)
    model = train(TextConditionedDenoiser(transformer, text_encoder), latents, step_fn, train_config,
                  resume=args.resume)

    if not PartialState().is_main_process:
        return 0
    out = Path(train_config.output_dir)
    pipe = Text2WorldPipeline(transformer=model.transformer, vae=vae.to("cpu"), scheduler=scheduler,
                              text_encoder=model.text_encoder, tokenizer=tokenizer)
    pipe.save_pretrained(out / "pipeline")
    write_snapshot_card(
        out / "pipeline", train_config, script="training/train_cosmos_dit.py", argv=argv, metric="latent_mse",
        label="latent MSE", kind="mse", dataset="wm_hub/physics-train",
        name="cosmos-dit-physics-snapshot", family="cosmos", pipeline_tag="text-to-video",
        summary="Cosmos-style DiT world model (Text2World / Video2World), training snapshot.",
        usage=f"from wm_hub import Text2WorldPipeline\npipe = Text2WorldPipeline.from_pretrained('{out / 'pipeline'}')",
        limitations="Training-set numbers only; the evaluated release card reports held-out numbers.",
        config={"transformer": dict(transformer.config), "text_encoder": text_encoder.config.to_diff_dict()},
    )
    print(f"wrote {out / 'pipeline'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
