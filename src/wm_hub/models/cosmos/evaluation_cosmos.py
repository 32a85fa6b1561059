"""Evaluation of Cosmos-style checkpoints (`wm-hub eval <name> --data data/physics-eval`), on held-out
physics scenes (`wm-hub data make physics --seed 1000000`).

Tokenizers, TokenBench-style: PSNR, SSIM, a temporal-consistency score (PSNR between the frame
differences of reconstruction and input: high when motion is reproduced without flicker), and PSNR on
out-of-distribution clips (the Genie platformer).

World models (the diffusion model's Text2World / Video2World pipelines, the autoregressive model's
`ARVideo2WorldPipeline`):
- Video2World from the first frame: PSNR / SSIM of the first 8 and 16 generated frames against the
  simulator's, beside a copy-the-last-frame baseline; the error of object positions tracked by colour
  in the generated frames against the simulated positions;
- Text2World: the share of caption facts (objects present, their motion) seen in videos generated from
  held-out captions (`wm_hub.envs.physics_probe`), with and without guidance, beside the same score of
  the real clips (the probe's ceiling) and of their reconstructions by the model's tokenizer (the model's);
- models fine-tuned for camera or action control: see `evaluation_control`;
- the autoregressive model: teacher-forced next-token cross-entropy and accuracy on held-out clips, and its
  Video2World rows as above, beside the diffusion model's when `cosmos-dit-physics-64` is shipped.
"""

from __future__ import annotations

import numpy as np
import torch

from wm_hub.cards import Metric
from wm_hub.data import record_episodes
from wm_hub.data.clips import ClipDataset, sample_clips, tensor_to_frames, write_gif
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


def evaluate(model, dataset, count: int = 64) -> list[Metric]:
    """The card's numbers of a tokenizer or a world-model pipeline (see the module docstring; for models
    fine-tuned for control, `evaluation_control`'s)."""
    from wm_hub.models.cosmos import evaluation_control
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    if evaluation_control.control_kind(model):
        return evaluation_control.evaluate(model, dataset, count)
    if isinstance(model, CausalVideoTokenizer):
        return evaluate_tokenizer(model, dataset, count)
    if isinstance(model, ARVideo2WorldPipeline):
        return evaluate_ar(model, dataset, count)
    return evaluate_world(model, dataset, count)


def evaluate_tokenizer(model: CausalVideoTokenizer, dataset, count: int = 64) -> list[Metric]:
    """The tokenizer card's numbers on held-out physics clips of 1 + 4 latent groups and on platformer clips;
    where the held-out episodes are longer, also the PSNR of the longest clips they hold (the whole 33-frame
    clips a world model encodes, for a 4x temporal tokenizer)."""
    clip_len = eval_clip_len(model)
    held_out = reconstruction_scores(model, dataset, count, clip_len)
    ood = reconstruction_scores(model, platformer_clips(count, clip_len), count, clip_len)
    metrics = [
        Metric("PSNR", held_out["psnr"], "psnr", DATASET, "dB"),
        Metric("SSIM", held_out["ssim"], "ssim", DATASET),
        Metric("temporal-difference PSNR", held_out["temporal"], "psnr", DATASET, "dB"),
        Metric("PSNR, out of distribution (platformer)", ood["psnr"], "psnr", OOD, "dB"),
    ]
    longest = longest_clip_len(model, dataset)
    if longest > clip_len:
        whole = reconstruction_scores(model, dataset, count, longest)["psnr"]
        metrics.append(Metric(whole_clip_metric(longest), whole, "psnr", DATASET, "dB"))
    return metrics


def longest_clip_len(model: CausalVideoTokenizer, dataset) -> int:
    """The longest clip, 1 + k * temporal_compression frames, that the longest episode of `dataset` holds."""
    t = model.config.temporal_compression
    return 1 + (int(ClipDataset(dataset, clip_len=1).episode_lengths.max()) - 1) // t * t


def whole_clip_metric(length: int) -> str:
    """The tokenizer card's row name for the PSNR of `length`-frame clips."""
    return f"PSNR, {length}-frame clips"


def compression_name(model: CausalVideoTokenizer) -> str:
    """E.g. "cv4x8x8": continuous or discrete, temporal x spatial x spatial."""
    c = model.config
    kind = "cv" if c.quantizer == "continuous" else "dv"
    return f"{kind}{c.temporal_compression}x{c.spatial_compression}x{c.spatial_compression}"


def write_card(folder, model, metrics: list[Metric], command: str, training: str) -> None:
    """Write the model card of a tokenizer or a world-model pipeline into `folder`."""
    from wm_hub.models.cosmos import evaluation_control
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    if evaluation_control.control_kind(model):
        evaluation_control.write_card(folder, model, metrics, command, training)
    elif isinstance(model, CausalVideoTokenizer):
        write_tokenizer_card(folder, model, metrics, command, training)
    elif isinstance(model, ARVideo2WorldPipeline):
        write_ar_card(folder, model, metrics, command, training)
    else:
        write_world_card(folder, model, metrics, command, training)


def demo(model, out_dir, name: str) -> str:
    """A tokenizer's reconstruction, or a world model's Video2World continuation, of a held-out physics
    clip, written as a GIF (input | output side by side); returns a one-line summary."""
    from wm_hub.models.cosmos import evaluation_control
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    if evaluation_control.control_kind(model):
        return evaluation_control.demo(model, out_dir, name)
    if isinstance(model, CausalVideoTokenizer):
        return tokenizer_demo(model, out_dir, name)
    if isinstance(model, ARVideo2WorldPipeline):
        return ar_demo(model, out_dir, name)
    return world_demo(model, out_dir, name)


def write_tokenizer_card(folder, model: CausalVideoTokenizer, metrics: list[Metric], command: str,
                         training: str) -> None:
    """Write a tokenizer's model card into `folder`."""
    from wm_hub.cards import write_model_card

    c = model.config
    t, frames = c.temporal_compression, eval_clip_len(model)
    side = 64 // c.spatial_compression
    if c.quantizer == "continuous":
        bottleneck = f"continuous latents with {c.latent_channels} channels, normalised by the stats in its config"
        usage_tail = ("latents = tokenizer.encode(video).latent_dist.mode()  "
                      f"# (1, 5, {c.latent_channels}, {side}, {side})\n"
                      f"recon = tokenizer.decode(latents, num_frames={frames}).sample")
    else:
        bottleneck = f"FSQ-discrete tokens, levels {tuple(c.fsq_levels)} (a codebook of {model.fsq.codebook_size})"
        usage_tail = (f"tokens = tokenizer.tokenize(video)  # (1, 5, {side}, {side}) integer ids\n"
                      f"recon = tokenizer.detokenize(tokens, num_frames={frames})")
    write_model_card(
        folder,
        name=folder.name,
        family="cosmos",
        pipeline_tag="feature-extraction",
        summary=(
            f"A Cosmos-style causal video tokenizer ({compression_name(model)}: {c.temporal_compression}x temporal, "
            f"{c.spatial_compression}x{c.spatial_compression} spatial compression) with {bottleneck}. As in Cosmos, it "
            f"works in wavelet space ({c.wavelet_levels}-level Haar per frame), with factorised causal 3D "
            "convolutions (1x3x3 then 3x1x1) and per-frame attention: the first frame is encoded alone, then each "
            "group of "
            f"{c.temporal_compression} frames, and encoding the first frames of a clip gives exactly the first "
            "latents of the whole clip. Trained on wm_hub's captioned 2D physics clips (64x64). The results are "
            f"on held-out clips of {frames} frames (1 + 4 latent groups) where a row names no other length."
        ),
        metrics=metrics,
        command=command,
        usage=("import torch\nfrom wm_hub import CausalVideoTokenizer\n\n"
               f"tokenizer = CausalVideoTokenizer.from_pretrained({folder.name!r})\n"
               f"video = torch.rand(1, {frames}, 3, 64, 64) * 2 - 1  # (B, T, C, H, W) in [-1, 1], T = 1 + {t}k\n"
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


def held_out_scene(clip_len: int) -> dict:
    """One held-out physics clip (scene 4000000) of `clip_len` frames, as a batch of one."""
    from wm_hub.envs.physics import PhysicsEnv, ScriptedPaddle

    clips = record_episodes(PhysicsEnv(), 1, policy=ScriptedPaddle(0), max_steps=clip_len - 1, seed=4_000_000,
                            info_keys=("object_states",), episode_captions=True, progress=False)
    return next(iter(sample_clips(clips, clip_len, 1)))


def tokenizer_demo(model: CausalVideoTokenizer, out_dir, name: str) -> str:
    """Reconstruct a held-out physics clip; write input | reconstruction side by side as a GIF (upscaled 4x)
    and return a one-line summary with its PSNR."""
    from pathlib import Path

    import numpy as np

    clip_len = eval_clip_len(model)
    video = held_out_scene(clip_len)["frames"]
    with torch.no_grad():
        recon = model.eval()(video).sample.clamp(-1, 1)
    value = psnr(recon, video).mean().item()
    pairs = np.concatenate([tensor_to_frames(video[0]), tensor_to_frames(recon[0])], axis=2)  # (T, H, 2W, C)
    path = write_gif(pairs, Path(out_dir) / f"{name}.gif")
    return f"{name}: reconstructed {clip_len} held-out frames at {value:.1f} dB PSNR -> {path} (input | output)"


# ---------------------------------------------------------------------------------------------
# Diffusion world models
# ---------------------------------------------------------------------------------------------


def object_position_error(generated: np.ndarray, real: np.ndarray, states: np.ndarray) -> float:
    """Mean distance (px) between objects tracked by colour in `generated` uint8 frames `(T, H, W, 3)` and
    their simulated positions `states` `(T, objects * 5)`; objects are matched to their colour in the
    first of the `real` frames (the same time steps). Frames where an object is not found in the generated
    video are left out."""
    from wm_hub.envs.physics_probe import locate_objects

    xy = states.reshape(len(states), -1, 5)[:, :, :2]  # (T, objects, 2)
    present = np.abs(states.reshape(len(states), -1, 5)[0]).sum(-1) > 0
    errors = []
    for colour, start in locate_objects(real[:1]).items():
        if np.isnan(start[0]).any():
            continue
        slot = int(np.argmin(np.where(present, np.linalg.norm(xy[0] - start[0], axis=-1), np.inf)))
        track = locate_objects(generated, [colour])[colour]
        errors.append(np.linalg.norm(track - xy[:, slot], axis=-1))
    stacked = np.concatenate(errors) if errors else np.array([np.nan])
    return float(np.nanmean(stacked)) if np.isfinite(stacked).any() else float("nan")


@torch.no_grad()
def continuation_scores(continue_fn, dataset, count: int, clip_len: int, seed: int = 0) -> dict[str, float]:
    """Continuations of the first frame of held-out clips: PSNR / SSIM of the first 8 and 16 generated
    frames, the same for a copy-the-first-frame baseline, and the tracked-position error (16 frames).
    `continue_fn(batch, clip_len, generator)` returns the video `(B, clip_len, C, H, W)` in [-1, 1]
    continued from `batch["frames"][:, :1]`."""
    rows: dict[str, list[torch.Tensor]] = {}
    errors = []
    g = torch.Generator().manual_seed(seed)
    for batch in sample_clips(dataset, clip_len, count):
        real = batch["frames"]  # (B, T, C, H, W)
        out = continue_fn(batch, clip_len, g)
        copy = real[:, :1].expand_as(real)
        for name, video in (("generated", out), ("copy last frame", copy)):
            for n in (8, 16):
                rows.setdefault(f"{name} PSNR {n}", []).append(psnr(video[:, 1: n + 1], real[:, 1: n + 1]).mean(1))
                rows.setdefault(f"{name} SSIM {n}", []).append(ssim(video[:, 1: n + 1], real[:, 1: n + 1]).mean(1))
        gen_frames, real_frames = tensor_to_frames(out), tensor_to_frames(real)
        states = batch["object_states"].numpy()
        for i in range(real.shape[0]):
            errors.append(object_position_error(gen_frames[i, 1:17], real_frames[i, 1:17], states[i, 1:17]))
    scores = {k: torch.cat(v).mean().item() for k, v in rows.items()}
    scores["position error"] = float(np.nanmean(errors))
    return scores


def video2world_scores(pipe, dataset, count: int, steps: int, seed: int = 0) -> dict[str, float]:
    """`continuation_scores` of the diffusion world model's Video2World, with the clip's caption."""
    from wm_hub.models.cosmos.pipeline_cosmos import Video2WorldPipeline

    world = Video2WorldPipeline(**pipe.components)

    def continue_fn(batch: dict, clip_len: int, generator: torch.Generator) -> torch.Tensor:
        return world(batch["caption"], video=batch["frames"][:, :1], num_frames=clip_len, num_inference_steps=steps,
                     generator=generator, output_type="pt").frames

    return continuation_scores(continue_fn, dataset, count, world.valid_num_frames(17), seed)


def continuation_metrics(scores: dict[str, float], label: str) -> list[Metric]:
    """The card rows of `continuation_scores`: the model's (`label`), the copy baseline's, the position error."""
    metrics = []
    for name in ("generated", "copy last frame"):
        row = label if name == "generated" else "baseline: copy the first frame"
        for n in (8, 16):
            metrics.append(Metric(f"{row} PSNR, {n} frames", scores[f"{name} PSNR {n}"], "psnr", DATASET, "dB"))
            metrics.append(Metric(f"{row} SSIM, {n} frames", scores[f"{name} SSIM {n}"], "ssim", DATASET))
    metrics.append(Metric(f"{label} object position error, 16 frames", scores["position error"], "mae", DATASET,
                          "px"))
    return metrics


@torch.no_grad()
def text2world_scores(pipe, dataset, count: int, steps: int, guidance_scales: tuple[float, ...], seed: int = 0
                      ) -> dict[str, float]:
    """The share of caption facts seen in videos generated from held-out captions, per guidance scale
    ("guidance 3"), in the real clips ("real": the probe's ceiling) and in their reconstructions by the
    pipeline's tokenizer ("reconstructed": what the world model, generating in that tokenizer's latents, could
    reach); and the same per kind of fact ("guidance 3 object": the named objects present, "guidance 3 motion":
    their motion verbs shown; see `caption_facts`)."""
    from wm_hub.envs.physics_probe import caption_facts
    from wm_hub.models.cosmos.pipeline_cosmos import Text2WorldPipeline

    world = Text2WorldPipeline(**pipe.components)
    clip_len = world.valid_num_frames(33)
    totals: dict[str, list[int]] = {}
    for batch in sample_clips(dataset, clip_len, count):
        videos = {"real": tensor_to_frames(batch["frames"]),
                  "reconstructed": tensor_to_frames(world.vae(batch["frames"]).sample.clamp(-1, 1))}
        for scale in guidance_scales:
            videos[f"guidance {scale:g}"] = world(batch["caption"], num_frames=clip_len, num_inference_steps=steps,
                                                  guidance_scale=scale, generator=torch.Generator().manual_seed(seed)
                                                  ).frames
        for name, frames in videos.items():
            for video, caption in zip(frames, batch["caption"], strict=True):
                for kind, holds in caption_facts(video, caption):
                    for key in (name, f"{name} {kind}"):
                        total = totals.setdefault(key, [0, 0])
                        total[0], total[1] = total[0] + holds, total[1] + 1
    return {name: seen / max(stated, 1) for name, (seen, stated) in totals.items()}


def evaluate_world(pipe, dataset, count: int = 64, steps: int = 30) -> list[Metric]:
    """The world model card's numbers (see the module docstring)."""
    metrics = continuation_metrics(video2world_scores(pipe, dataset, count, steps), "Video2World")
    guidance = pipe.default_guidance_scale
    t2w = text2world_scores(pipe, dataset, count, steps, (guidance, 1.0))
    guided = f"guidance {guidance:g}"
    metrics.append(Metric(f"Text2World caption accuracy ({guided})", t2w[guided], "accuracy", DATASET))
    metrics.append(Metric("Text2World caption accuracy (no guidance)", t2w["guidance 1"], "accuracy", DATASET))
    for kind, label in (("object", "named objects present"), ("motion", "motion verbs shown")):
        metrics.append(Metric(f"Text2World {label} ({guided})", t2w[f"{guided} {kind}"], "accuracy", DATASET))
    metrics.append(Metric("caption accuracy of the real clips (the probe's ceiling)", t2w["real"], "accuracy",
                          DATASET))
    metrics.append(Metric("caption accuracy of the tokenizer's reconstructions (the model's ceiling)",
                          t2w["reconstructed"], "accuracy", DATASET))
    return metrics


WORLD_USAGE = """import torch
from wm_hub import Text2WorldPipeline, Video2WorldPipeline

t2w = Text2WorldPipeline.from_pretrained("{name}")
video = t2w("a red ball falls and bounces; a blue box slides left", num_frames=33,
            generator=torch.Generator().manual_seed(0)).frames  # (1, 33, 64, 64, 3) uint8
v2w = Video2WorldPipeline.from_pretrained("{name}")
video = v2w("a red ball falls and bounces", image=first_frame, num_frames=17).frames

from diffusers.utils import export_to_video
export_to_video(list(video[0]), "world.mp4", fps=15)"""


def write_world_card(folder, pipe, metrics: list[Metric], command: str, training: str) -> None:
    """Write a diffusion world model's card into `folder`."""
    from wm_hub.cards import write_model_card

    t, vae = pipe.transformer.config, pipe.vae.config
    size = pipe.image_size
    write_model_card(
        folder,
        name=folder.name,
        family="cosmos",
        pipeline_tag="text-to-video",
        summary=(
            "A Cosmos-style diffusion world model at toy scale: a DiT (3D RoPE, adaLN by the noise level, "
            f"cross-attention to text; {t.num_layers} layers, width {t.hidden_size}) over the latents of a causal "
            f"video tokenizer ({vae.temporal_compression}x{vae.spatial_compression}x{vae.spatial_compression}), "
            "sampled with EDM. One folder serves `Text2WorldPipeline` (caption -> video) and "
            f"`Video2WorldPipeline` (caption + first frames -> the rest), at {size}x{size} on wm_hub's captioned "
            "2D physics scenes. The T5 text encoder was trained from scratch with the DiT on the captions: no "
            "pretrained encoder can be downloaded where it was trained, and the captions' vocabulary is small."
        ),
        metrics=metrics,
        command=command,
        usage=WORLD_USAGE.format(name=folder.name),
        dataset="wm_hub/physics",
        training=training,
        limitations=(
            "Knows one synthetic domain: 2-4 flat-coloured balls, boxes and triangles, a paddle, a floor, at "
            f"{size}x{size}. Captions outside its vocabulary map to unknown tokens. Motion drifts from physics over "
            "longer horizons (compare the 8- and 16-frame rows and the copy baseline). The caption score checks "
            "objects and their motion from colour tracks, not contacts."
        ),
        config={"transformer": dict(t), "vae": dict(vae), "scheduler": dict(pipe.scheduler.config)},
        tags=["cosmos", "world-model", "diffusion", "text-to-video", "video-to-video", "physics"],
    )


def world_demo(pipe, out_dir, name: str, steps: int = 30) -> str:
    """Video2World from the first frame and caption of a held-out scene: real | generated as a GIF."""
    from pathlib import Path

    from wm_hub.models.cosmos.pipeline_cosmos import Video2WorldPipeline

    world = Video2WorldPipeline(**pipe.components)
    clip_len = world.valid_num_frames(33)
    batch = held_out_scene(clip_len)
    out = world(batch["caption"], video=batch["frames"][:, :1], num_frames=clip_len, num_inference_steps=steps,
                generator=torch.Generator().manual_seed(0)).frames
    pairs = np.concatenate([tensor_to_frames(batch["frames"][0]), out[0]], axis=2)  # (T, H, 2W, C)
    path = write_gif(pairs, Path(out_dir) / f"{name}.gif")
    return f"{name}: continued held-out scene 4000000 ({batch['caption'][0]!r}) for {clip_len} frames -> {path}"


# ---------------------------------------------------------------------------------------------
# Autoregressive world models
# ---------------------------------------------------------------------------------------------

DIT_NAME = "cosmos-dit-physics-64"


@torch.no_grad()
def teacher_forced_scores(pipe, dataset, count: int) -> dict[str, float]:
    """Next-token cross-entropy (nats) and accuracy on held-out clips as long as the model's context, for
    every token after the first latent frame (the given one)."""
    c = pipe.transformer.config
    clip_len = 1 + (c.max_latent_frames - 1) * pipe.frame_groups
    nll, correct = [], []
    for batch in sample_clips(dataset, clip_len, count):
        ids = pipe.vae.tokenize(batch["frames"].to(pipe.device)).flatten(1)
        n, ok = pipe.transformer.score(ids, **pipe.text_inputs(batch["caption"], ids.shape[0]))
        first = c.tokens_per_frame - 1  # predictions of the second latent frame's tokens onward
        nll.append(n[:, first:].flatten())
        correct.append(ok[:, first:].flatten().float())
    return {"cross-entropy": torch.cat(nll).mean().item(), "accuracy": torch.cat(correct).mean().item()}


def ar_continuation_scores(pipe, dataset, count: int, seed: int = 0) -> dict[str, float]:
    """`continuation_scores` of the AR model from each clip's first frame (and caption, if it takes text)."""

    def continue_fn(batch: dict, clip_len: int, generator: torch.Generator) -> torch.Tensor:
        return pipe(video=batch["frames"][:, :1], prompt=batch["caption"], num_frames=clip_len, generator=generator,
                    output_type="pt").frames

    return continuation_scores(continue_fn, dataset, count, pipe.valid_num_frames(17), seed)


def evaluate_ar(pipe, dataset, count: int = 64) -> list[Metric]:
    """The autoregressive world model card's numbers (see the module docstring)."""
    from wm_hub.hub import list_models, load

    forced = teacher_forced_scores(pipe, dataset, count)
    metrics = [Metric("teacher-forced next-token cross-entropy", forced["cross-entropy"], "loss", DATASET, "nats"),
               Metric("teacher-forced next-token accuracy", forced["accuracy"], "accuracy", DATASET)]
    metrics += continuation_metrics(ar_continuation_scores(pipe, dataset, count), "Video2World (autoregressive)")
    if any(info.name == DIT_NAME for info in list_models()):
        dit = video2world_scores(load(DIT_NAME), dataset, count, steps=30)
        for n in (8, 16):
            metrics.append(Metric(f"diffusion model ({DIT_NAME}) Video2World PSNR, {n} frames",
                                  dit[f"generated PSNR {n}"], "psnr", DATASET, "dB"))
    return metrics


AR_USAGE = """import torch
from wm_hub import ARVideo2WorldPipeline

pipe = ARVideo2WorldPipeline.from_pretrained("{name}")
video = pipe(image=first_frame, prompt="a red ball falls and bounces", num_frames=17, top_k=50,
             generator=torch.Generator().manual_seed(0)).frames  # (1, 17, 64, 64, 3) uint8

# or drive the transformers model directly: tokens (1, T' * 8 * 8) in (t, h, w) order
tokens = pipe.vae.tokenize(video_tensor).flatten(1)
more = pipe.transformer.generate(tokens, max_new_tokens=64, do_sample=True, top_p=0.9)"""


def write_ar_card(folder, pipe, metrics: list[Metric], command: str, training: str) -> None:
    """Write an autoregressive world model's card into `folder`."""
    from wm_hub.cards import write_model_card

    t, vae = pipe.transformer.config, pipe.vae.config
    text = ("cross-attention to a small T5 text encoder trained with it from scratch (nothing pretrained can be "
            "downloaded where it was trained)" if t.cross_attention_dim is not None else "no text conditioning")
    write_model_card(
        folder,
        name=folder.name,
        family="cosmos",
        pipeline_tag="image-to-video",
        summary=(
            "A Cosmos-style autoregressive world model at toy scale: a decoder-only transformer "
            f"({t.num_hidden_layers} layers, width {t.hidden_size}, 3D rotary positions, KV cache; {text}) that "
            f"predicts the next FSQ token ({t.vocab_size} ids, levels {tuple(t.fsq_levels)}, embeddings and head "
            f"factorised over the levels) of a causal video tokenizer's {t.latent_height}x{t.latent_width} latent "
            f"grids ({vae.temporal_compression}x{vae.spatial_compression}x{vae.spatial_compression}), on wm_hub's "
            "captioned 2D physics scenes. `ARVideo2WorldPipeline` continues an image or video; the transformer "
            "is a transformers model with `generate()`."
        ),
        metrics=metrics,
        command=command,
        usage=AR_USAGE.format(name=folder.name),
        dataset="wm_hub/physics",
        training=training,
        limitations=(
            "Knows one synthetic domain at 64x64. Its context is "
            f"{t.max_latent_frames} latent frames; longer videos are generated in sliding windows whose first "
            "latent frame is not a clip's first frame, as in training. Errors compound token by token over long "
            "horizons (compare the 8- and 16-frame rows)."
        ),
        config={"transformer": t.to_diff_dict(), "vae": dict(vae)},
        tags=["cosmos", "world-model", "autoregressive", "video-to-video", "physics"],
    )


def ar_demo(pipe, out_dir, name: str) -> str:
    """The AR model continues the first frame of a held-out scene: real | generated as a GIF."""
    from pathlib import Path

    clip_len = pipe.valid_num_frames(17)
    batch = held_out_scene(clip_len)
    out = pipe(video=batch["frames"][:, :1], prompt=batch["caption"], num_frames=clip_len,
               generator=torch.Generator().manual_seed(0)).frames
    pairs = np.concatenate([tensor_to_frames(batch["frames"][0]), out[0]], axis=2)  # (T, H, 2W, C)
    path = write_gif(pairs, Path(out_dir) / f"{name}.gif")
    return f"{name}: continued held-out scene 4000000 for {clip_len} frames, token by token -> {path}"
