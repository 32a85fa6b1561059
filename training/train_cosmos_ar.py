"""Train the Cosmos-style autoregressive world model on the discrete tokenizer's tokens of the physics clips,
in Cosmos' stages at toy scale:

    wm-hub data make physics --num-clips 2000 --out data/physics-train
    accelerate launch training/train_cosmos_ar.py --stage 1     # short clips: the next latent frames' tokens
    accelerate launch training/train_cosmos_ar.py --stage 1.1   # longer clips, from stage 1's model
    accelerate launch training/train_cosmos_ar.py --stage 2     # + text by cross-attention, from stage 1.1's

Clips are tokenized once by the frozen FSQ tokenizer (`vae` in the config; the ids are kept in `token_cache`,
one file per clip length and stride, reused by later stages and runs) and flattened in (t, h, w) order;
the loss is next-token cross-entropy on the tokens after the stage's `context_frames` latent frames (the
given frames are not scored, as in Video2World use). Stage 2 adds cross-attention layers whose output
projections start at zero, so it starts as the stage-1.1 model, and trains a small T5 text encoder alongside
(captions dropped at `caption_dropout`). Each stage resumes with `--resume` and ends by writing
`<output_dir>/model` (stage 2 also `<output_dir>/pipeline`, an `ARVideo2WorldPipeline` folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from torch import Tensor, nn
from transformers import T5EncoderModel

from wm_hub.data import ClipDataset, EncodedClips, encoder_key
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.configuration_cosmos import WorldARConfig
from wm_hub.models.cosmos.modeling_cosmos import WorldARModel
from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline
from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config
from wm_hub.trainer import add_run_arguments, load_yaml, run_config, train, write_snapshot_card

STAGES = ("1", "1.1", "2")


class TextConditionedAR(nn.Module):
    """The AR model and its text encoder in one module, so distributed training sees every parameter."""

    def __init__(self, model: WorldARModel, text_encoder: T5EncoderModel) -> None:
        super().__init__()
        self.model, self.text_encoder = model, text_encoder

    def forward(self, input_ids: Tensor, labels: Tensor, text_ids: Tensor, text_mask: Tensor, **control: Tensor
                ) -> Tensor:
        text = self.text_encoder(input_ids=text_ids, attention_mask=text_mask).last_hidden_state
        return self.model(input_ids, labels=labels, encoder_hidden_states=text, encoder_attention_mask=text_mask,
                          use_cache=False, logits_to_keep=1, **control).loss


def make_step(context_frames: int, tokens_per_frame: int, tokenizer=None, caption_dropout: float = 0.0, seed: int = 0,
              control=None):
    """The training step on batches of token ids `(B, T', h, w)` (and captions): score every token after
    `context_frames` latent frames. `control(batch)`, if given, returns the model's control inputs (camera /
    actions) for the batch (fine-tuning for control)."""
    rng = torch.Generator().manual_seed(seed)

    def step(model: nn.Module, batch: dict) -> dict:
        ids = batch["latents"].flatten(1)  # (B, T' * h * w)
        labels = ids.clone()
        labels[:, : context_frames * tokens_per_frame] = -100
        extra = {k: v.to(ids.device) for k, v in control(batch).items()} if control is not None else {}
        if tokenizer is None:
            loss = model(ids, labels=labels, use_cache=False, logits_to_keep=1, **extra).loss
        else:
            keep = torch.rand(ids.shape[0], generator=rng) >= caption_dropout
            captions = [c if k else "" for c, k in zip(batch.get("caption", [""] * len(ids)), keep.tolist(),
                                                       strict=True)]
            text = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt").to(ids.device)
            loss = model(ids, labels, text["input_ids"], text["attention_mask"], **extra)
        return {"loss": loss, "perplexity": loss.detach().exp()}

    return step


def build_model(config: dict, stage: str, vae: CausalVideoTokenizer, text_dim: int | None) -> WorldARModel:
    """Stage 1: a new model on the tokenizer's grid; later stages: the previous stage's model (stage 2 with
    zero-initialised cross-attention added)."""
    section = config[f"stage{stage}"]
    if "init" not in section:
        s = vae.config.spatial_compression
        side = config["image_size"] // s
        return WorldARModel(WorldARConfig(**config["model"], fsq_levels=vae.config.fsq_levels, latent_height=side,
                                          latent_width=side, max_latent_frames=config["max_latent_frames"]))
    previous = WorldARModel.from_pretrained(section["init"])
    if tuple(previous.config.fsq_levels) != tuple(vae.config.fsq_levels):
        raise ValueError(f"{section['init']} models FSQ levels {tuple(previous.config.fsq_levels)}, the tokenizer "
                         f"{config['vae']} has {tuple(vae.config.fsq_levels)}")
    if text_dim is None:
        return previous
    model = WorldARModel(WorldARConfig(**{**previous.config.to_dict(), "cross_attention_dim": text_dim}))
    missing, unexpected = model.load_state_dict(previous.state_dict(), strict=False)
    if unexpected or any("cross" not in name for name in missing):
        raise ValueError(f"{section['init']} does not fit: missing {missing}, unexpected {unexpected}")
    for block in model.blocks:
        nn.init.zeros_(block.cross_attention.proj.weight)
        nn.init.zeros_(block.cross_attention.proj.bias)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=STAGES, required=True)
    add_run_arguments(parser, "training/configs/cosmos_ar_physics.yaml")
    args = parser.parse_args(argv)

    config = load_yaml(args.config)
    section = config[f"stage{args.stage}"]
    train_config = run_config(section["train"], args)
    data = args.data or config["data"]["train"]
    stride = section.get("start_stride", 1)
    clips = ClipDataset(data, clip_len=section["clip_len"], start_stride=stride, in_memory=True)
    vae = CausalVideoTokenizer.from_pretrained(config["vae"]).to(PartialState().device)
    if vae.fsq is None:
        raise ValueError(f"{config['vae']} is a continuous tokenizer: the AR model needs the discrete (FSQ) one")
    tokenizer = text_encoder = None
    if args.stage == "2":
        if "caption" not in clips.data.column_names:
            raise ValueError(f"{data} has no captions: make it with `wm-hub data make physics`")
        tokenizer = build_caption_tokenizer(clips.data["caption"], model_max_length=config["text"]["max_length"])
        text_encoder = T5EncoderModel(caption_encoder_config(tokenizer, **config["text"]["encoder"]))
    model = build_model(config, args.stage, vae, text_encoder.config.d_model if text_encoder else None)
    state = PartialState()
    with state.main_process_first():
        cache = Path(config["token_cache"]) / f"clips{clips.clip_len}-stride{stride}.safetensors"
        tokens = EncodedClips(clips, vae.tokenize, device=state.device, cache=cache,
                              key=encoder_key(vae, data, clips.clip_len, stride))
    vae.to("cpu")
    step_fn = make_step(section["context_frames"], model.config.tokens_per_frame, tokenizer,
                        section.get("caption_dropout", 0.0), train_config.seed)
    trained = train(TextConditionedAR(model, text_encoder) if text_encoder else model, tokens, step_fn, train_config,
                    resume=args.resume)

    if not PartialState().is_main_process:
        return 0
    out = Path(train_config.output_dir)
    model = trained.model if text_encoder else trained
    model.save_pretrained(out / "model")
    folder = out / "model"
    if text_encoder is not None:
        folder = out / "pipeline"
        ARVideo2WorldPipeline(transformer=model, vae=vae.to("cpu"), text_encoder=trained.text_encoder,
                              tokenizer=tokenizer).save_pretrained(folder)
    write_snapshot_card(
        folder, train_config, script="training/train_cosmos_ar.py", argv=argv, metric="perplexity",
        label="next-token perplexity", kind="perplexity", dataset="wm_hub/physics-train",
        name=f"cosmos-ar-physics-stage{args.stage}", family="cosmos", pipeline_tag="image-to-video",
        summary=f"Cosmos-style autoregressive world model over FSQ tokens, training snapshot after stage {args.stage}.",
        usage=f"from wm_hub import WorldARModel\nmodel = WorldARModel.from_pretrained('{out / 'model'}')",
        training=f"Clips of {section['clip_len']} frames, {section['context_frames']} latent frame(s) of context.",
        limitations="Training-set numbers only; the evaluated release card reports held-out numbers.",
        config=model.config.to_diff_dict(),
    )
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
