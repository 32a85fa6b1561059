"""Evaluation of diffusion world models fine-tuned for control (`wm-hub eval cosmos-dit-physics-64-camera --data
data/camera-eval`, `... -action --data data/push-eval`), on held-out scenes (seeds 1000000+).

- Video2World from each clip's first frame with the clip's cameras / actions: PSNR / SSIM of the first 8 and 16
  generated frames against the rendered ones, beside the base model (`cosmos-dit-physics-64`) given the same
  first frame (and the same empty prompt and noise), which cannot know where the camera or the agent goes, and
  beside copying the first frame (what a model that ignored the controls and the motion would score).
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
from wm_hub.models.cosmos.evaluation_cosmos import DIT_NAME as BASE_NAME
from wm_hub.models.cosmos.evaluation_cosmos import reconstruction_scores
from wm_hub.models.cosmos.finetuning_cosmos import clip_actions, clip_cameras

DATASETS = {"camera": "wm_hub/camera-eval (scenes 1000000+)", "action": "wm_hub/physics-push-eval (scenes 1000000+)"}
WHAT = {"camera": "camera", "action": "actions"}


def control_kind(pipe) -> str | None:
    """"camera", "action" or None: the control a diffusion world model pipeline's transformer takes."""
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
        return p([""] * len(first), video=first, num_frames=clip_len, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(seed), output_type="pt", **control).frames

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
    from wm_hub.hub import load
    from wm_hub.models.cosmos.pipeline_cosmos import Video2WorldPipeline

    kind = control_kind(pipe)
    base = Video2WorldPipeline(**load(BASE_NAME).components)
    s = control_scores(pipe, base, dataset, count, steps)
    data, what = DATASETS[kind], WHAT[kind]
    metrics = []
    for name, label in (("fine-tuned", f"Video2World with the clip's {what}"),
                        ("base", f"base model ({BASE_NAME}), same first frame")):
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
from wm_hub import Video2WorldPipeline
from wm_hub.envs.camera_scene import CameraSceneEnv

pipe = Video2WorldPipeline.from_pretrained("{name}")
env = CameraSceneEnv()
first_frame, info = env.reset(seed=1_000_000)  # (64, 64, 3) uint8: a held-out scene
K, poses = info["intrinsics"].reshape(3, 3), [info["camera_pose"]]  # (3, 3) pixels; (4, 4) camera-to-world
for _ in range(16):  # pan right: the env moves its camera by (right, up, forward, yaw) and renders the truth
    poses.append(env.step(np.array([0, 0, 0, 0.8], np.float32))[4]["camera_pose"])
video = pipe("", image=first_frame, camera=(K, np.stack(poses)), num_frames=17).frames  # (1, 17, 64, 64, 3) uint8""",
    "action": """import numpy as np
from wm_hub import Video2WorldPipeline
from wm_hub.envs.physics import PhysicsEnv

pipe = Video2WorldPipeline.from_pretrained("{name}")
first_frame, _ = PhysicsEnv(agent="pusher").reset(seed=1_000_000)  # (64, 64, 3) uint8: a held-out scene
actions = np.tile([[1.0, 0.0]], (16, 1))              # (T - 1, 2): the pusher's velocity, full speed right
video = pipe("", image=first_frame, actions=actions, num_frames=17).frames  # (1, 17, 64, 64, 3) uint8""",
}


LIMITS = {kind: (f"Its tokenizer is `cosmos-tokenizer-cv4x8x8-physics` fine-tuned on {frames}, while the base model "
                 f"keeps the 2D physics one: part of the gain over the base model is the new domain, the "
                 f"swapped-{kind} rows measure the {kind} control alone.")
          for kind, frames in (("camera", "the camera scenes"), ("action", "the pusher clips"))}


def write_card(folder, pipe, metrics: list[Metric], command: str, training: str) -> None:
    """Write a control-fine-tuned world model's card into `folder`."""
    from wm_hub.cards import write_model_card

    kind, t = control_kind(pipe), pipe.transformer.config
    if kind == "camera":
        control = ("camera control: the Plücker rays (direction, moment) of every frame's pixels, from the "
                   "intrinsics and the camera-to-world pose relative to the first frame's, averaged to the "
                   f"{t.sample_size}x{t.sample_size} latent grid "
                   f"({6 * t.frames_per_latent} channels per latent frame), added to the patch tokens by a "
                   "zero-initialised projection; trained on a 3D scene of boxes flown through by pans, orbits and "
                   "dollies")
    else:
        control = (f"action control: the {t.action_dim}-D actions into each latent frame's {t.frames_per_latent} "
                   "video frames, each beside the running sum of the actions since the first frame, embedded by an "
                   "MLP with a zero-initialised output and added to the frame's noise-level embedding (which "
                   "modulates every block); trained on physics scenes where a pusher disk moves by recorded 2-D "
                   "velocities")
    write_model_card(
        folder,
        name=folder.name,
        family="cosmos",
        pipeline_tag="image-to-video",
        summary=(f"`{BASE_NAME}` (a Cosmos-style DiT world model) fine-tuned for {control}. "
                 f"`Video2WorldPipeline` takes the first frame and the {WHAT[kind]} of every step."),
        metrics=metrics,
        command=command,
        usage=USAGE[kind].format(name=folder.name),
        dataset=DATASETS[kind].split(" ")[0],
        training=training,
        limitations=("Toy scale, 64x64, one synthetic domain. Video2World from one frame, 17 frames (the length it "
                     "was fine-tuned on); Text2World is not what it was tuned for. " + LIMITS[kind]),
        config={"transformer": dict(t)},
        tags=["cosmos", "world-model", "diffusion", "video-to-video", f"{kind}-control"],
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
    from wm_hub.hub import load
    from wm_hub.models.cosmos.pipeline_cosmos import Video2WorldPipeline

    kind = control_kind(pipe)
    clip_len = pipe.valid_num_frames(17)
    batch = held_out_clip(kind, clip_len)
    first = batch["frames"][:, :1]
    base = Video2WorldPipeline(**load(BASE_NAME).components)
    run = {"num_frames": clip_len, "num_inference_steps": steps, "video": first}
    tuned = pipe("", generator=torch.Generator().manual_seed(0), **run, **control_args(batch, kind)).frames
    plain = base("", generator=torch.Generator().manual_seed(0), **run).frames
    panels = np.concatenate([tensor_to_frames(batch["frames"][0]), plain[0], tuned[0]], axis=2)  # (T, H, 3W, C)
    path = write_gif(panels, Path(out_dir) / f"{name}.gif")
    return f"{name}: held-out scene 4000000 from its first frame and {WHAT[kind]} (real | base | fine-tuned) -> {path}"
