"""Evaluation of world models fine-tuned for control (`wm-hub eval cosmos-dit-physics-64-camera --data
data/camera-eval`, `... -action --data data/push-eval`, `wm-hub eval cosmos-ar-physics-64-camera --data
data/camera-eval`, `... -action --data data/push-eval`), diffusion or autoregressive, on held-out scenes (seeds
1000000+).

- Video2World from each clip's first frame with the clip's cameras / actions: PSNR / SSIM of the first 8 and 16
  generated frames against the rendered ones, beside the base model (`cosmos-dit-physics-64` or
  `cosmos-ar-physics-64`) given the same first frame (and the same empty prompt and noise or sampling seed), which
  cannot know where the camera or the agent goes, and beside copying the first frame (what a model that ignored
  the controls and the motion would score).
- Swapped controls: each clip gets the next clip's camera moves / actions, and the simulator renders what those
  do in this clip's scene. A model that follows the controls is closer to that rendering than to the clip's own
  continuation.
- The reconstruction PSNR of both models' tokenizers on the same clips: the ceiling of any generated frame.
Prompts are empty throughout: the camera clips have no captions, and a caption would tell the action model
what happens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wm_hub.cards import Metric
from wm_hub.data import ClipDataset, frames_to_tensor, tensor_to_frames, write_gif
from wm_hub.data.clips import sample_clips
from wm_hub.metrics import psnr, ssim
from wm_hub.models.cosmos.evaluation_cosmos import DIT_NAME, reconstruction_scores
from wm_hub.models.cosmos.finetuning_cosmos import clip_actions, clip_cameras, load_video2world
from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

DATASETS = {"camera": "wm_hub/camera-eval (scenes 1000000+)", "action": "wm_hub/physics-push-eval (scenes 1000000+)"}
WHAT = {"camera": "camera", "action": "actions"}
# The base model each kind of world model is fine-tuned from, and the tokenizer its fine-tuned tokenizer started as
BASES = {"diffusion": DIT_NAME, "autoregressive": "cosmos-ar-physics-64"}
TOKENIZERS = {"diffusion": "cosmos-tokenizer-cv4x8x8-physics", "autoregressive": "cosmos-tokenizer-dv4x8x8-physics"}


def model_kind(pipe) -> str:
    """"autoregressive" or "diffusion": the kind of Cosmos-style world model a pipeline runs."""
    return "autoregressive" if isinstance(pipe, ARVideo2WorldPipeline) else "diffusion"


def load_base(pipe):
    """The base model `pipe`'s world model was fine-tuned from, as the same kind of Video2World pipeline."""
    return load_video2world(BASES[model_kind(pipe)])


def continue_clips(pipe, first: Tensor, num_frames: int, seed: int = 0, steps: int = 30, **control) -> Tensor:
    """Video2World from the first frames `(B, 1, 3, H, W)` with an empty prompt: `(B, num_frames, 3, H, W)` in
    [-1, 1]; a diffusion model samples `steps` steps from noise seeded by `seed`, an autoregressive one samples its
    tokens (transformers' defaults) seeded by it."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(pipe, ARVideo2WorldPipeline):
        prompt = [""] * len(first) if pipe.text_encoder is not None else None
        return pipe(video=first, prompt=prompt, num_frames=num_frames, generator=generator, output_type="pt",
                    **control).frames
    return pipe([""] * len(first), video=first, num_frames=num_frames, num_inference_steps=steps,
                generator=generator, output_type="pt", **control).frames


def control_kind(pipe) -> str | None:
    """"camera", "action" or None: the control a world model pipeline's transformer takes (diffusion or AR)."""
    config = getattr(getattr(pipe, "transformer", None), "config", None)
    if config is None or not hasattr(config, "action_dim"):
        return None
    return "camera" if config.camera_conditioning else "action" if config.action_dim else None


def control_args(batch: dict, kind: str, poses: Tensor | None = None, actions: Tensor | None = None) -> dict:
    """The pipeline's control arguments for a batch of clips (its own cameras / actions unless given)."""
    if kind == "camera":
        intrinsics, own = clip_cameras(batch)
        return {"camera": (intrinsics, own if poses is None else poses)}
    return {"actions": clip_actions(batch) if actions is None else actions}


def resimulate(kind: str, seeds: list[int], moves: Tensor) -> tuple[Tensor, Tensor]:
    """Render scenes `seeds` driven by env actions `moves` `(B, T - 1, A)`: frames `(B, T, 3, H, W)` in [-1, 1]
    and camera-to-world poses `(B, T, 4, 4)` (the camera env's; identity for the physics scenes)."""
    from wm_hub.envs.camera_scene import CameraSceneEnv
    from wm_hub.envs.physics import PhysicsEnv

    videos, poses = [], []
    for seed, actions in zip(seeds, moves.numpy(), strict=True):
        env = CameraSceneEnv() if kind == "camera" else PhysicsEnv(agent="pusher")
        obs, info = env.reset(seed=seed)
        frames, cams = [obs], [info.get("camera_pose", np.eye(4))]
        for action in actions:
            obs, _, _, _, info = env.step(action)
            frames.append(obs)
            cams.append(info.get("camera_pose", np.eye(4)))
        videos.append(frames_to_tensor(np.stack(frames)))
        poses.append(torch.as_tensor(np.stack(cams), dtype=torch.float32))
    return torch.stack(videos), torch.stack(poses)


@torch.no_grad()
def control_scores(pipe, base, dataset, count: int, steps: int = 30, seed: int = 0) -> dict[str, float]:
    """PSNR / SSIM at 8 and 16 frames of the fine-tuned model (with the clips' controls), the base model, and the
    fine-tuned model with swapped controls against the simulation of those and against the clips."""
    kind = control_kind(pipe)
    clip_len = pipe.valid_num_frames(17)
    rows: dict[str, list[Tensor]] = {}

    def generate(p, first: Tensor, **control) -> Tensor:
        return continue_clips(p, first, clip_len, seed, steps, **control)

    def score(name: str, video: Tensor, target: Tensor) -> None:
        for n in (8, 16):
            rows.setdefault(f"{name} PSNR {n}", []).append(psnr(video[:, 1: n + 1], target[:, 1: n + 1]).mean(1))
            rows.setdefault(f"{name} SSIM {n}", []).append(ssim(video[:, 1: n + 1], target[:, 1: n + 1]).mean(1))

    for batch in sample_clips(dataset, clip_len, count):
        real, first = batch["frames"], batch["frames"][:, :1]
        score("fine-tuned", generate(pipe, first, **control_args(batch, kind)), real)
        score("base", generate(base, first), real)
        score("copy", first.expand_as(real), real)
        if len(real) < 2:
            continue
        order = torch.roll(torch.arange(len(real)), 1)  # clip i gets clip i - 1's controls
        moves = clip_actions(batch)[order]
        seeds = [int(s) for s in batch["seed"][:, 0, 0]]
        simulated, poses = resimulate(kind, seeds, moves)
        swapped = generate(pipe, first, **control_args(batch, kind, poses=poses, actions=moves))
        score("swapped vs simulated", swapped, simulated)
        score("swapped vs own clip", swapped, real)
    return {k: torch.cat(v).mean().item() for k, v in rows.items()}


def evaluate(pipe, dataset, count: int = 64, steps: int = 30) -> list[Metric]:
    """The control card's numbers (see the module docstring)."""
    kind = control_kind(pipe)
    base = load_base(pipe)
    s = control_scores(pipe, base, dataset, count, steps)
    data, what = DATASETS[kind], WHAT[kind]
    metrics = []
    for name, label in (("fine-tuned", f"Video2World with the clip's {what}"),
                        ("base", f"base model ({BASES[model_kind(pipe)]}), same first frame")):
        for n in (8, 16):
            metrics.append(Metric(f"{label} PSNR, {n} frames", s[f"{name} PSNR {n}"], "psnr", data, "dB"))
            metrics.append(Metric(f"{label} SSIM, {n} frames", s[f"{name} SSIM {n}"], "ssim", data))
    metrics.append(Metric("PSNR gain over the base model, 8 frames", s["fine-tuned PSNR 8"] - s["base PSNR 8"],
                          "psnr", data, "dB"))
    for n in (8, 16):
        metrics.append(Metric(f"copy the first frame PSNR, {n} frames", s[f"copy PSNR {n}"], "psnr", data, "dB"))
    for name, label in (("swapped vs simulated", f"another clip's {what}: PSNR against the simulation of them"),
                        ("swapped vs own clip", f"another clip's {what}: PSNR against the clip's own frames")):
        for n in (8, 16):
            metrics.append(Metric(f"{label}, {n} frames", s[f"{name} PSNR {n}"], "psnr", data, "dB"))
    # The tokenizers' reconstructions of the same clips: the most any generated frame can score
    clip_len = pipe.valid_num_frames(17)
    for model, label in ((pipe, "its tokenizer"), (base, "the base model's tokenizer")):
        score = reconstruction_scores(model.vae, dataset, count, clip_len)["psnr"]
        metrics.append(Metric(f"reconstruction PSNR of {label} (the ceiling)", score, "psnr", data, "dB"))
    return metrics


USAGE = {
    "camera": """import numpy as np
from wm_hub import {cls}
from wm_hub.envs.camera_scene import CameraSceneEnv

pipe = {cls}.from_pretrained("{name}")
env = CameraSceneEnv()
first_frame, info = env.reset(seed=1_000_000)  # (64, 64, 3) uint8: a held-out scene
K, poses = info["intrinsics"].reshape(3, 3), [info["camera_pose"]]  # (3, 3) pixels; (4, 4) camera-to-world
for _ in range(16):  # pan right: the env moves its camera by (right, up, forward, yaw) and renders the truth
    poses.append(env.step(np.array([0, 0, 0, 0.8], np.float32))[4]["camera_pose"])
video = {call}camera=(K, np.stack(poses)), num_frames=17).frames  # (1, 17, 64, 64, 3) uint8""",
    "action": """import numpy as np
from wm_hub import {cls}
from wm_hub.envs.physics import PhysicsEnv

pipe = {cls}.from_pretrained("{name}")
first_frame, _ = PhysicsEnv(agent="pusher").reset(seed=1_000_000)  # (64, 64, 3) uint8: a held-out scene
actions = np.tile([[1.0, 0.0]], (16, 1))              # (T - 1, 2): the pusher's velocity, full speed right
video = {call}actions=actions, num_frames=17).frames  # (1, 17, 64, 64, 3) uint8""",
}
# How each kind of pipeline is called (the prompt stays empty) and named
CALLS = {"diffusion": ("Video2WorldPipeline", 'pipe("", image=first_frame, '),
         "autoregressive": ("ARVideo2WorldPipeline", 'pipe(image=first_frame, prompt="", ')}
TRAINED_ON = {"camera": "trained on a 3D scene of boxes flown through by pans, orbits and dollies",
              "action": "trained on physics scenes where a pusher disk moves by recorded 2-D velocities"}
FRAMES = {"camera": "the camera scenes", "action": "the pusher clips"}


def control_text(pipe) -> str:
    """What the card says the control is and how it enters the world model."""
    kind, t, ar = control_kind(pipe), pipe.transformer.config, model_kind(pipe) == "autoregressive"
    if kind == "camera":
        side = pipe.latent_size
        how = ("projected per grid cell by a zero-initialised linear layer and added to the input of the position "
               "that predicts that cell's token" if ar else
               "added to the patch tokens by a zero-initialised projection")
        return ("camera control: the Plücker rays (direction, moment) of every frame's pixels, from the intrinsics "
                "and the camera-to-world pose relative to the first frame's, averaged to the "
                f"{side}x{side} latent grid ({6 * t.frames_per_latent} channels per latent frame), {how}; "
                + TRAINED_ON[kind])
    how = ("added to the inputs of the positions that predict that latent frame's tokens" if ar else
           "added to the frame's noise-level embedding (which modulates every block)")
    return (f"action control: the {t.action_dim}-D actions into each latent frame's {t.frames_per_latent} video "
            "frames, each beside the running sum of the actions since the first frame, embedded by an MLP with a "
            f"zero-initialised output and {how}; " + TRAINED_ON[kind])


def write_card(folder, pipe, metrics: list[Metric], command: str, training: str) -> None:
    """Write a control-fine-tuned world model's card into `folder`."""
    from wm_hub.cards import write_model_card

    kind, t, family = control_kind(pipe), pipe.transformer.config, model_kind(pipe)
    cls, call = CALLS[family]
    if family == "autoregressive":
        what = "autoregressive world model over FSQ tokens"
        scope = (f"with controls, at most its context of {t.max_latent_frames} latent frames "
                 f"({1 + (t.max_latent_frames - 1) * pipe.frame_groups} frames); the prompt stays empty (captions "
                 "were dropped throughout fine-tuning)")
        config = t.to_diff_dict()
    else:
        what, scope, config = "DiT world model", "Text2World is not what it was tuned for", dict(t)
    write_model_card(
        folder,
        name=folder.name,
        family="cosmos",
        pipeline_tag="image-to-video",
        summary=(f"`{BASES[family]}` (a Cosmos-style {what}) fine-tuned for {control_text(pipe)}. "
                 f"`{cls}` takes the first frame and the {WHAT[kind]} of every step."),
        metrics=metrics,
        command=command,
        usage=USAGE[kind].format(name=folder.name, cls=cls, call=call),
        dataset=DATASETS[kind].split(" ")[0],
        training=training,
        limitations=(f"Toy scale, 64x64, one synthetic domain. Video2World from one frame, 17 frames (the length it "
                     f"was fine-tuned on); {scope}. Its tokenizer is `{TOKENIZERS[family]}` fine-tuned on "
                     f"{FRAMES[kind]}, while the base model keeps the 2D physics one: part of the gain over the base "
                     f"model is the new domain, the swapped-{kind} rows measure the {kind} control alone."),
        config={"transformer": config},
        tags=["cosmos", "world-model", family, "video-to-video", f"{kind}-control"],
    )


def held_out_clip(kind: str, clip_len: int) -> dict:
    """One held-out scene (seed 4000000) as a batch of one clip with its controls."""
    from torch.utils.data import default_collate

    from wm_hub.envs.camera_scene import record_camera_clips
    from wm_hub.envs.physics import record_physics_clips

    data = (record_camera_clips(1, seed=4_000_000, frames=clip_len) if kind == "camera"
            else record_physics_clips(1, seed=4_000_000, frames=clip_len, agent="pusher"))
    return default_collate([ClipDataset(data, clip_len)[0]])


def demo(pipe, out_dir, name: str, steps: int = 30) -> str:
    """A held-out scene continued from its first frame: real | base model | fine-tuned with the controls, as a GIF."""
    kind = control_kind(pipe)
    clip_len = pipe.valid_num_frames(17)
    batch = held_out_clip(kind, clip_len)
    first = batch["frames"][:, :1]
    tuned = continue_clips(pipe, first, clip_len, steps=steps, **control_args(batch, kind))
    plain = continue_clips(load_base(pipe), first, clip_len, steps=steps)
    videos = [tensor_to_frames(v[0]) for v in (batch["frames"], plain, tuned)]
    panels = np.concatenate(videos, axis=2)  # (T, H, 3W, C)
    path = write_gif(panels, Path(out_dir) / f"{name}.gif")
    return f"{name}: held-out scene 4000000 from its first frame and {WHAT[kind]} (real | base | fine-tuned) -> {path}"
