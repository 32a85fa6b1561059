"""GeniePipeline: a prompt frame in, a latent action chosen each step, frames out.

    pipe = GeniePipeline.from_pretrained("genie-platformer-64")
    session = pipe.start(image)          # interactive: one frame per call
    frame = session.step(2)              # (H, W, C) uint8
    video = pipe(image, actions=[2, 2, 5, 0], generator=torch.Generator().manual_seed(0)).frames
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput
from torch import Tensor

from wm_hub.data.clips import tensor_to_frames
from wm_hub.models.genie.modeling_genie import DynamicsModel, LatentActionModel, VideoTokenizer
from wm_hub.pipeline_utils import OUTPUT_TYPES, ImageInput, WorldModelPipeline, postprocess_video, preprocess_images


@dataclass
class GeniePipelineOutput(BaseOutput):
    """`frames`: `np` uint8 `(B, T+1, H, W, C)`, `pt` float `(B, T+1, C, H, W)` in [-1, 1], or `pil` lists
    of images; frame 0 is the tokenizer's reconstruction of the prompt."""

    frames: np.ndarray | Tensor | list[list[PIL.Image.Image]]


class GenieSession:
    """An interactive rollout. The tokenizer decoder and the dynamics model keep key/value caches of
    the frames so far, so each `step` costs one new frame's compute (MaskGIT steps + one decode)."""

    def __init__(self, pipe: GeniePipeline, tokens: Tensor, generator: torch.Generator | None,
                 steps: int | None, temperature: float | None) -> None:
        self.pipe, self.generator, self.steps, self.temperature = pipe, generator, steps, temperature
        self.dynamics_cache = pipe.dynamics.new_cache()
        self.decoder_cache = pipe.tokenizer.new_cache()
        B = tokens.shape[0]
        no_action = torch.full((B, 1), pipe.num_actions, dtype=torch.long, device=tokens.device)
        with torch.no_grad():
            pipe.dynamics.prime(tokens.flatten(2), no_action, self.dynamics_cache)
            self.last = pipe.tokenizer.decode(tokens, cache=self.decoder_cache)[:, 0]  # (B, C, H, W)
        self.tokens = [tokens[:, 0]]

    def step_tensor(self, action: int | Sequence[int] | Tensor) -> Tensor:
        """Generate the next frame for latent `action` (one per batch item, or one for all):
        returns `(B, C, H, W)` in [-1, 1]."""
        B = self.tokens[0].shape[0]
        action = torch.as_tensor(action, dtype=torch.long).flatten().to(self.tokens[0].device)
        if action.numel() == 1:
            action = action.expand(B)
        if action.shape != (B,):
            raise ValueError(f"expected one action or {B} actions, got {action.numel()}")
        with torch.inference_mode():  # no autograd bookkeeping at all: steps ~10% faster than under no_grad
            tokens = self.pipe.dynamics.generate_frame(action, self.dynamics_cache, self.steps, self.temperature,
                                                       self.generator)
            g = self.pipe.tokenizer.config.grid_size
            tokens = tokens.view(B, 1, g, g)
            self.tokens.append(tokens[:, 0])
            self.last = self.pipe.tokenizer.decode(tokens, cache=self.decoder_cache)[:, 0].clamp(-1, 1)
        return self.last.clone()  # a plain tensor: an inference-mode one refuses in-place updates outside it

    def step(self, action: int) -> np.ndarray:
        """Generate the next frame for latent `action` in `range(num_actions)`: `(H, W, C)` uint8
        (the first batch item)."""
        return tensor_to_frames(self.step_tensor(action))[0]


class GeniePipeline(WorldModelPipeline):
    """Genie at inference: the video tokenizer and the dynamics model; the latent action model is
    optional (used to infer actions from real video, e.g. for evaluation)."""

    model_cpu_offload_seq = "tokenizer->dynamics"
    _optional_components = ["lam"]
    _callback_tensor_inputs = ["tokens", "frame"]

    def __init__(self, tokenizer: VideoTokenizer, dynamics: DynamicsModel, lam: LatentActionModel | None = None):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, dynamics=dynamics, lam=lam)
        for module in (tokenizer, dynamics, lam):
            if module is not None:
                module.eval()

    @property
    def num_actions(self) -> int:
        return self.dynamics.config.num_actions

    @property
    def image_size(self) -> int:
        return self.tokenizer.config.image_size

    def preprocess(self, image: ImageInput | Sequence[ImageInput]) -> Tensor:
        """Prompt image(s) -> `(B, 1, C, H, W)` in [-1, 1] (see `preprocess_images`; other sizes are resized
        with a warning)."""
        return preprocess_images(image, self.image_size, "prompt image")[:, None].to(self.device)

    def start(
        self,
        image: ImageInput | Sequence[ImageInput],
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        temperature: float | None = None,
    ) -> GenieSession:
        """Begin an interactive rollout from a prompt frame; call `session.step(action)` for each frame."""
        prompt = self.preprocess(image)
        with torch.no_grad():
            tokens = self.tokenizer.encode(prompt)  # (B, 1, h, w)
        return GenieSession(self, tokens, generator, num_inference_steps, temperature)

    @torch.no_grad()
    def infer_actions(self, video: Tensor) -> Tensor:
        """Latent actions `(B, T-1)` of a real video `(B, T, C, H, W)` in [-1, 1] (needs the LAM)."""
        if self.lam is None:
            raise ValueError("this pipeline was loaded without its latent action model (lam)")
        return self.lam.infer_actions(video.to(self.device))

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | Sequence[ImageInput],
        actions: Sequence[int] | Sequence[Sequence[int]] | Tensor,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        temperature: float | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable[[GeniePipeline, int, int, dict], dict] | None = None,
        return_dict: bool = True,
    ) -> GeniePipelineOutput | tuple:
        """Roll out `len(actions)` frames after the prompt. `actions`: `(T,)` for every batch item or
        `(B, T)`. `num_inference_steps` (MaskGIT steps) and `temperature` default to the dynamics config."""
        # 1. Check inputs
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        actions = torch.as_tensor(actions, dtype=torch.long)
        if actions.dim() not in (1, 2) or actions.shape[-1] < 1:
            raise ValueError(f"expected actions (T,) or (B, T) with T >= 1, got shape {tuple(actions.shape)}")
        if actions.min() < 0 or actions.max() >= self.num_actions:
            raise ValueError(f"latent actions must lie in range({self.num_actions}), got {actions.tolist()}")

        # 2. Encode the prompt frame
        session = self.start(image, generator, num_inference_steps, temperature)
        B = session.tokens[0].shape[0]
        actions = actions.expand(B, -1) if actions.dim() == 1 else actions
        if actions.shape[0] != B:
            raise ValueError(f"got {actions.shape[0]} action sequences for {B} prompt images")
        frames = [session.last.clamp(-1, 1)]

        # 3. Roll out: MaskGIT-decode each next frame's tokens, then decode them to pixels
        for t in range(actions.shape[1]):
            frames.append(session.step_tensor(actions[:, t]))
            if callback_on_step_end is not None:
                callback_on_step_end(self, t, int(actions[0, t]), {"tokens": session.tokens[-1], "frame": frames[-1]})

        # 4. Output
        result = postprocess_video(torch.stack(frames, dim=1), output_type)  # from (B, T+1, C, H, W)
        return GeniePipelineOutput(frames=result) if return_dict else (result,)
