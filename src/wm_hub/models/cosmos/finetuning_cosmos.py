"""Fine-tuning the world models (diffusion or autoregressive) for control, as Cosmos post-trains its world models:
camera poses (Plücker rays) or actions.

- `load_video2world` loads a base model folder as the Video2World pipeline of its kind.
- `extend_for_control` copies a trained `WorldTransformer3DModel` (diffusion) or `WorldARModel` (autoregressive)
  into one with camera and/or action inputs, whose new layers start at zero (it starts as the base model).
- `add_lora` freezes the base weights and trains LoRA adapters (peft) on its linear layers, plus the new
  control layers in full; `merge_lora` folds the adapters back in, for a plain model folder.
- `camera_condition` and `action_condition` turn per-video-frame cameras and per-step actions into the
  per-latent-frame inputs the transformer takes: latent frame 0 is video frame 0 alone (the causal
  tokenizer's first group), latent frame j >= 1 covers video frames 1 + f(j - 1) .. fj, f the tokenizer's
  temporal compression (`frames_per_latent`). Cameras enter relative to the clip's first camera (as CameraCtrl
  does): frame 0's rays are the same in every clip, and the others say how the camera moved since, whatever the
  world frame the poses were given in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wm_hub.layers.camera import plucker_embedding
from wm_hub.models.cosmos.configuration_cosmos import WorldARConfig
from wm_hub.models.cosmos.modeling_cosmos import WorldARModel
from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel

WorldModel = WorldTransformer3DModel | WorldARModel

LORA_TARGETS = r".*blocks\.\d+\.(self_attention\.(to_q|to_kv|proj)|cross_attention\.(to_q|to_kv|proj)|mlp\.[02])$"
CONTROL_LAYERS = ("camera_embed", "action_embed")


def load_video2world(name_or_path: str):
    """A shipped name or folder of a Cosmos-style world model as a Video2World pipeline: an
    `ARVideo2WorldPipeline` as it is, a diffusion model's folder (saved as Text2World or Video2World) as a
    `Video2WorldPipeline`."""
    from wm_hub.hub import load
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline, Video2WorldPipeline

    pipe = load(name_or_path)
    if isinstance(pipe, ARVideo2WorldPipeline):
        return pipe
    if not hasattr(pipe, "scheduler"):
        raise ValueError(f"{name_or_path} is not a Cosmos-style world model pipeline (diffusion or autoregressive)")
    return Video2WorldPipeline(**pipe.components)


def latent_frame_index(num_frames: int, frames_per_latent: int) -> Tensor:
    """`(T', frames_per_latent)` indices of the video frames of each latent frame (row 0: frame 0 repeated);
    `num_frames` must be 1 + k * frames_per_latent."""
    if num_frames < 1 or (num_frames - 1) % frames_per_latent:
        raise ValueError(f"expected 1 + k * {frames_per_latent} frames, got {num_frames}")
    latents = 1 + (num_frames - 1) // frames_per_latent
    index = 1 + (torch.arange(latents)[:, None] - 1) * frames_per_latent + torch.arange(frames_per_latent)
    index[0] = 0
    return index


def camera_condition(intrinsics: Tensor, poses: Tensor, frames_per_latent: int, image_size: int, grid_size: int
                     ) -> Tensor:
    """Cameras of each video frame, intrinsics `(B, T, 3, 3)` (pixels of `image_size` frames) and camera-to-world
    poses `(B, T, 4, 4)` -> the transformer's camera input `(B, T', 6 * frames_per_latent, grid, grid)`: the rays of
    the poses in the first camera's frame, `poses[:, :1]^-1 @ poses`."""
    relative = torch.linalg.inv(poses[:, :1].float()) @ poses.float()
    rays = plucker_embedding(intrinsics, relative, image_size, grid_size)  # (B, T, 6, g, g)
    index = latent_frame_index(rays.shape[1], frames_per_latent).to(rays.device)
    grouped = rays[:, index]  # (B, T', f, 6, g, g)
    return grouped.flatten(2, 3)


def action_condition(actions: Tensor, frames_per_latent: int) -> Tensor:
    """Actions between consecutive frames `(B, T - 1, A)` (`actions[:, k]` leads from frame k to k + 1) -> the
    transformer's action input `(B, T', frames_per_latent * A)`: for each latent frame, the actions into its
    video frames (zeros for frame 0, which no action leads into)."""
    B, steps, A = actions.shape
    into = torch.cat([actions.new_zeros(B, 1, A), actions], dim=1)  # (B, T, A): the action into each frame
    index = latent_frame_index(steps + 1, frames_per_latent).to(actions.device)
    return into[:, index].flatten(2)  # (B, T', f * A); latent frame 0: frame 0's zeros


def extend_for_control(base: WorldModel, camera: bool = False, action_dim: int = 0,
                       frames_per_latent: int | None = None) -> WorldModel:
    """A float32 copy of `base` (the diffusion or the autoregressive world model) with camera and/or action inputs
    added (zero-initialised: it computes what `base` does); `frames_per_latent` defaults to the base config's (set
    it to the tokenizer's temporal compression)."""
    if not camera and not action_dim:
        raise ValueError("nothing to add: ask for camera=True and/or action_dim > 0")
    ar = isinstance(base, WorldARModel)
    config = base.config.to_dict() if ar else {k: v for k, v in dict(base.config).items() if not k.startswith("_")}
    config.update(camera_conditioning=camera or config.get("camera_conditioning", False),
                  action_dim=action_dim or config.get("action_dim", 0))
    if frames_per_latent is not None:
        config["frames_per_latent"] = frames_per_latent
    if ar:
        config.pop("dtype", None)  # a float32 model, whatever the base was saved in
        model = WorldARModel(WorldARConfig(**config))
    else:
        model = WorldTransformer3DModel(**config)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    if unexpected or any(not name.startswith(CONTROL_LAYERS) for name in missing):
        raise ValueError(f"the base model does not fit: missing {missing}, unexpected {unexpected}")
    return model


def add_lora(model: WorldModel, rank: int, alpha: float | None = None) -> nn.Module:
    """Freeze `model` but for LoRA adapters of rank `rank` on every block's attention and MLP layers and, in
    full, its control layers; returns the peft model (call it as `model`)."""
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise ValueError(f"expected a LoRA rank >= 1, got {rank}")
    control = [name for name in CONTROL_LAYERS if getattr(model, name) is not None]
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=LORA_TARGETS, modules_to_save=control)
    return get_peft_model(model, config)


def merge_lora(model: nn.Module) -> WorldModel:
    """The plain world model of a model from `add_lora` with its adapters merged into the weights (or the model
    itself when it has none)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def clip_cameras(batch: dict) -> tuple[Tensor, Tensor]:
    """The per-frame cameras of a batch of clips (`ClipDataset` / `EncodedClips` items): intrinsics `(B, T, 3, 3)`
    and camera-to-world poses `(B, T, 4, 4)`, from the flat `intrinsics` `(B, T, 9)` and `camera_pose` `(B, T, 16)`."""
    B, T = batch["camera_pose"].shape[:2]
    return batch["intrinsics"].view(B, T, 3, 3), batch["camera_pose"].view(B, T, 4, 4)


def clip_actions(batch: dict) -> Tensor:
    """The actions between the frames of a batch of clips, `(B, T - 1, A)`, from `actions` `(B, T, 1, A)` (the
    action taken at each frame; the last frame's leads out of the clip)."""
    return batch["actions"][:, :-1, 0]


def control_inputs(batch: dict, model: WorldModel, image_size: int, grid_size: int) -> dict[str, Tensor]:
    """The world model's control inputs from a batch of clips of `1 + k * frames_per_latent` frames of
    `image_size` pixels, on a `grid_size` latent grid: `camera` from `clip_cameras`, `actions` from
    `clip_actions`."""
    c, out = model.config, {}
    if c.camera_conditioning:
        out["camera"] = camera_condition(*clip_cameras(batch), c.frames_per_latent, image_size, grid_size)
    if c.action_dim:
        actions = clip_actions(batch)
        if actions.shape[-1] != c.action_dim:
            raise ValueError(f"the model takes {c.action_dim}-D actions, the data has {actions.shape[-1]}-D ones")
        out["actions"] = action_condition(actions.float(), c.frames_per_latent)
    return out
