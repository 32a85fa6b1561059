"""Cosmos-style pipelines: Text2World and Video2World over the diffusion world model, and Video2World over
the autoregressive one (`ARVideo2WorldPipeline`).

    pipe = Text2WorldPipeline.from_pretrained("cosmos-dit-physics-64")
    video = pipe("a red ball falls and bounces", num_frames=17, generator=torch.Generator().manual_seed(0)).frames

    pipe = Video2WorldPipeline.from_pretrained("cosmos-dit-physics-64")
    video = pipe("a red ball falls and bounces", image=first_frame, num_frames=17).frames

Both load from one folder (`model_index.json`: transformer, vae, scheduler, text_encoder, tokenizer).
Sampling is EDM Euler (diffusers' `EDMEulerScheduler`) over the causal tokenizer's normalised latents;
conditioning latent frames (Video2World) replace the noisy ones at every step, carry a small noise level
of their own (the transformer's `conditioning_sigma`) and are flagged by the condition mask, as in diffusers' Cosmos
pipelines. Classifier-free guidance mixes the denoiser's outputs with and without the text.

A transformer fine-tuned for control (`wm_hub.models.cosmos.finetuning_cosmos`) also takes, in Video2World,
`camera=(K, poses)` (pinhole intrinsics and camera-to-world poses of every generated frame, in any world frame: the
model sees them relative to the first) or `actions` (one per step between frames):

    pipe = Video2WorldPipeline.from_pretrained("cosmos-dit-physics-64-camera")
    video = pipe("", image=first_frame, camera=(K, poses), num_frames=17).frames  # K (3, 3), poses (17, 4, 4)

`ARVideo2WorldPipeline` tokenizes the given frames with the discrete tokenizer, continues the token
sequence with `WorldARModel.generate()` (temperature, top-k, top-p) and decodes the tokens. An autoregressive
model fine-tuned for control takes the same `camera=` / `actions=`, for videos within its context:

    pipe = ARVideo2WorldPipeline.from_pretrained("cosmos-ar-physics-64-action")
    video = pipe(image=first_frame, prompt="", actions=actions, num_frames=17).frames  # actions (16, 2)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import EDMEulerScheduler
from diffusers.utils import BaseOutput
from torch import Tensor
from transformers import PreTrainedTokenizerFast, T5EncoderModel

from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.modeling_cosmos import WorldARModel
from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel
from wm_hub.pipeline_utils import OUTPUT_TYPES, ImageInput, WorldModelPipeline, postprocess_video, preprocess_images

VideoInput = ImageInput | Sequence[ImageInput]


@dataclass
class WorldPipelineOutput(BaseOutput):
    """`frames`: `np` uint8 `(B, T, H, W, C)`, `pt` float `(B, T, C, H, W)` in [-1, 1], or `pil` lists."""

    frames: np.ndarray | Tensor | list[list[PIL.Image.Image]]


class _CosmosPipeline(WorldModelPipeline):
    """What every Cosmos-style pipeline shares: frame counts that fit the causal tokenizer (`vae`), prompt
    encoding with the text encoder, conditioning frames from an image or a video, and the control inputs of
    world models fine-tuned for camera or action control."""

    @property
    def latent_size(self) -> int:
        """The side of the world model's latent frames (each pipeline reads it from its transformer)."""
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        """The frame size the world model was trained on (its latent size times the tokenizer's compression)."""
        return self.latent_size * self.vae.config.spatial_compression

    @property
    def frame_groups(self) -> int:
        return self.vae.config.temporal_compression

    def valid_num_frames(self, num_frames: int) -> int:
        """`num_frames` rounded up to 1 + k * temporal_compression (with a warning if it changed)."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        tc = self.frame_groups
        fitted = 1 + (self.vae.latent_frames(num_frames) - 1) * tc
        if fitted != num_frames:
            warnings.warn(f"num_frames={num_frames} does not fit the tokenizer's {tc}x temporal compression "
                          f"(1 + k*{tc}): generating {fitted} frames", stacklevel=3)
        return fitted

    @torch.no_grad()
    def encode_prompt(self, prompt: str | list[str]) -> tuple[Tensor, Tensor]:
        """Prompt(s) -> text hidden states `(B, S, text_dim)` and attention mask `(B, S)`; a prompt longer
        than the tokenizer's `model_max_length` is cut (with a warning)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        limit = self.tokenizer.model_max_length
        for p in prompts:
            if len(self.tokenizer.tokenize(p)) + 1 > limit:  # + the closing eos
                warnings.warn(f"prompt of more than {limit} tokens truncated: {p!r}", stacklevel=3)
        batch = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=limit, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return hidden.last_hidden_state, batch["attention_mask"]

    def preprocess_video(self, image: VideoInput | None, video: VideoInput | None) -> Tensor:
        """An image, or a video (a list of images, a uint8 array `(T, H, W, 3)`, or a tensor `(B, T, 3, H, W)`
        in [-1, 1]) -> `(B, T, 3, H, W)` with T = 1 + k * temporal_compression (later frames are dropped,
        with a warning)."""
        if (image is None) == (video is None):
            raise ValueError("pass exactly one of `image` or `video`")
        size = self.image_size
        if image is not None:
            frames = preprocess_images(image, size, "image")[:, None]  # (B, 1, 3, H, W)
        elif isinstance(video, Tensor) and video.dim() == 5:
            B, T = video.shape[:2]
            frames = preprocess_images(video.flatten(0, 1), size, "video frame").view(B, T, 3, size, size)
        else:
            frames = preprocess_images(video, size, "video frame")[None]  # one video (1, T, 3, H, W)
        T = frames.shape[1]
        usable = 1 + (T - 1) // self.frame_groups * self.frame_groups
        if usable != T:
            warnings.warn(f"{T} conditioning frames do not fit the tokenizer's {self.frame_groups}x temporal "
                          f"compression: using the first {usable}", stacklevel=3)
        return frames[:, :usable].to(self.device)

    def prepare_control(self, camera: tuple[Any, Any] | None, actions: Any, num_frames: int, batch_size: int
                        ) -> dict[str, Tensor]:
        """The world model's control inputs: `camera = (K, poses)`, intrinsics `(3, 3)`, `(T, 3, 3)` or
        `(B, T, 3, 3)` in pixels of the pipeline's frames and camera-to-world poses (OpenCV axes) `(T, 4, 4)` or
        `(B, T, 4, 4)`, one per generated frame (T = num_frames, the given ones included); `actions` `(T - 1, A)`
        or `(B, T - 1, A)`, `actions[k]` leading from frame k to k + 1. Raises if the model takes no such input."""
        from wm_hub.models.cosmos.finetuning_cosmos import action_condition, camera_condition

        c, out = self.transformer.config, {}
        if (camera is not None or actions is not None) and c.frames_per_latent != self.frame_groups:
            raise ValueError(f"the world model groups {c.frames_per_latent} frames per latent frame, the tokenizer "
                             f"{self.frame_groups}: they were not trained together")
        if camera is not None:
            if not c.camera_conditioning:
                raise ValueError("this model takes no camera: load one fine-tuned for camera control (or fine-tune "
                                 "it: training/finetune_camera.py)")
            K, poses = (torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
                        for x in camera)
            poses = poses[None] if poses.dim() == 3 else poses
            if poses.dim() != 4 or poses.shape[1:] != (num_frames, 4, 4):
                raise ValueError(f"expected camera poses (T, 4, 4) or (B, T, 4, 4) with T = num_frames = {num_frames},"
                                 f" got {tuple(poses.shape)}")
            try:
                K = K.expand(*poses.shape[:2], 3, 3)
            except RuntimeError as err:
                raise ValueError(f"expected intrinsics (3, 3), (T, 3, 3) or (B, T, 3, 3) with T = {num_frames}, "
                                 f"got {tuple(K.shape)}") from err
            out["camera"] = camera_condition(K, poses, c.frames_per_latent, self.image_size, self.latent_size)
        if actions is not None:
            if not c.action_dim:
                raise ValueError("this model takes no actions: load one fine-tuned for action control (or fine-tune "
                                 "it: training/finetune_action.py)")
            a = torch.as_tensor(np.asarray(actions) if not isinstance(actions, Tensor) else actions,
                                dtype=torch.float32)
            a = a[None] if a.dim() == 2 else a
            if a.dim() != 3 or a.shape[1:] != (num_frames - 1, c.action_dim):
                raise ValueError(f"expected actions (T - 1, {c.action_dim}) or (B, T - 1, {c.action_dim}) with "
                                 f"T = num_frames = {num_frames}, got {tuple(a.shape)}")
            out["actions"] = action_condition(a, c.frames_per_latent)
        for name, value in out.items():
            if value.shape[0] not in (1, batch_size):
                raise ValueError(f"got {name} for {value.shape[0]} videos and {batch_size} prompts")
            out[name] = value.to(self.device).expand(batch_size, *value.shape[1:])
        return out


class _WorldPipeline(_CosmosPipeline):
    """What Text2World and Video2World share: the guided EDM sampling loop with conditioning latents."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "denoised"]
    _shares_folders_with = ("Text2WorldPipeline", "Video2WorldPipeline")  # one shipped folder serves both
    default_guidance_scale = 3.0

    def __init__(
        self,
        transformer: WorldTransformer3DModel,
        vae: CausalVideoTokenizer,
        scheduler: EDMEulerScheduler,
        text_encoder: T5EncoderModel,
        tokenizer: PreTrainedTokenizerFast,
    ) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer)
        for module in (transformer, vae, text_encoder):
            module.eval()

    @property
    def latent_size(self) -> int:
        return self.transformer.config.sample_size

    # -- sampling ---------------------------------------------------------------------------------
    def denoise(
        self,
        latents: Tensor,
        sigma: Tensor,
        text: Tensor,
        text_mask: Tensor,
        condition_mask: Tensor,
        guidance: tuple[Tensor, Tensor, float] | None,
        control: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """EDM denoiser D(x; sigma) with optional classifier-free guidance: latents `(B, T, C, H, W)`,
        per-frame noise levels `sigma` `(B, T)`; guidance = (negative text, its mask, scale); `control` the
        transformer's camera / actions inputs (both halves of a guided batch get them)."""
        s = sigma[:, :, None, None, None]
        model_in = self.scheduler.precondition_inputs(latents, s)
        c_noise = self.scheduler.precondition_noise(sigma)
        control = control or {}
        if guidance is None:
            out = self.transformer(model_in, c_noise, text, text_mask, condition_mask, **control).sample
        else:  # one batch: with the text, then with the negative text
            negative, negative_mask, scale = guidance
            out = self.transformer(torch.cat([model_in, model_in]), torch.cat([c_noise, c_noise]),
                                   torch.cat([text, negative]), torch.cat([text_mask, negative_mask]),
                                   torch.cat([condition_mask, condition_mask]),
                                   **{k: torch.cat([v, v]) for k, v in control.items()}).sample
            conditional, unconditional = out.chunk(2)
            out = unconditional + scale * (conditional - unconditional)
        return self.scheduler.precondition_outputs(latents, out, s)

    @torch.no_grad()
    def generate(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None,
        condition: Tensor | None,
        num_frames: int,
        num_inference_steps: int,
        guidance_scale: float | None,
        generator: torch.Generator | None,
        output_type: str,
        callback_on_step_end: Callable[[Any, int, Tensor, dict], dict] | None,
        camera: tuple[Any, Any] | None = None,
        actions: Any = None,
    ) -> Tensor | np.ndarray | list:
        """Sample videos of `num_frames` frames; `condition` `(B, Tc, C, H, W)` in [-1, 1] gives the first
        frames (Video2World) or None (Text2World); `guidance_scale` None is `default_guidance_scale`;
        `camera` and `actions` as `prepare_control` takes them."""
        # 1. Check inputs
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        num_frames = self.valid_num_frames(num_frames)
        latent_frames = self.vae.latent_frames(num_frames)

        # 2. Encode the prompt (and the negative prompt for classifier-free guidance)
        guidance_scale = self.default_guidance_scale if guidance_scale is None else guidance_scale
        text, text_mask = self.encode_prompt(prompt)
        B = text.shape[0]
        guidance = None
        if guidance_scale != 1.0:
            negative = negative_prompt if negative_prompt is not None else ""
            negative = [negative] * B if isinstance(negative, str) else list(negative)
            if len(negative) != B:
                raise ValueError(f"got {len(negative)} negative prompts for {B} prompts")
            guidance = (*self.encode_prompt(negative), guidance_scale)

        control = self.prepare_control(camera, actions, num_frames, B)

        # 3. Prepare latents: noise, and the conditioning latents of the given frames
        s = self.vae.config.spatial_compression
        shape = (B, latent_frames, self.transformer.config.in_channels, self.image_size // s, self.image_size // s)
        condition_mask = torch.zeros(B, latent_frames, device=self.device)
        cond_latents = torch.zeros(shape, device=self.device)
        if condition is not None:
            if condition.shape[0] not in (1, B):
                raise ValueError(f"got {condition.shape[0]} conditioning videos for {B} prompts")
            given = self.vae.encode(condition.to(self.device)).latent_dist.mode().expand(B, -1, -1, -1, -1)
            if given.shape[1] >= latent_frames:
                raise ValueError(f"{condition.shape[1]} conditioning frames leave nothing to generate in "
                                 f"num_frames={num_frames}: ask for more frames")
            cond_latents[:, : given.shape[1]] = given
            condition_mask[:, : given.shape[1]] = 1
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        sigmas = self.scheduler.sigmas.to(self.device)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)
        latents = noise * sigmas[0]
        is_cond = condition_mask[:, :, None, None, None].bool()
        augment = torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)
        conditioning_sigma = self.transformer.config.conditioning_sigma
        cond_noisy = cond_latents + conditioning_sigma * augment  # the noise augmentation

        # 4. Denoising loop (Euler steps of the probability-flow ODE in EDM's sigma)
        for i in range(num_inference_steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            latents = torch.where(is_cond, cond_noisy, latents)
            frame_sigma = torch.where(condition_mask.bool(), conditioning_sigma, sigma)  # (B, T)
            denoised = self.denoise(latents, frame_sigma, text, text_mask, condition_mask, guidance, control)
            denoised = torch.where(is_cond, cond_latents, denoised)
            latents = latents + (sigma_next - sigma) * (latents - denoised) / sigma
            if callback_on_step_end is not None:
                values = callback_on_step_end(self, i, sigma, {"latents": latents, "denoised": denoised})
                latents = values.get("latents", latents) if values else latents
        latents = torch.where(is_cond, cond_latents, latents)

        # 5. Decode
        video = self.vae.decode(latents, num_frames=num_frames).sample.clamp(-1, 1)  # (B, T, C, H, W)
        return postprocess_video(video, output_type)


class Text2WorldPipeline(_WorldPipeline):
    """Prompt -> video."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_frames: int = 17,
        num_inference_steps: int = 30,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable[[Any, int, Tensor, dict], dict] | None = None,
        return_dict: bool = True,
    ) -> WorldPipelineOutput | tuple:
        frames = self.generate(prompt, negative_prompt, None, num_frames, num_inference_steps,
                               guidance_scale, generator, output_type, callback_on_step_end)
        return WorldPipelineOutput(frames=frames) if return_dict else (frames,)


class Video2WorldPipeline(_WorldPipeline):
    """Prompt + an image or the first frames of a video -> the video continued."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        image: VideoInput | None = None,
        video: VideoInput | None = None,
        negative_prompt: str | list[str] | None = None,
        num_frames: int = 17,
        num_inference_steps: int = 30,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable[[Any, int, Tensor, dict], dict] | None = None,
        return_dict: bool = True,
        camera: tuple[Any, Any] | None = None,
        actions: Any = None,
    ) -> WorldPipelineOutput | tuple:
        """`camera=(K, poses)` and `actions`, for models fine-tuned for that control: see `prepare_control`."""
        condition = self.preprocess_video(image, video)
        frames = self.generate(prompt, negative_prompt, condition, num_frames, num_inference_steps,
                               guidance_scale, generator, output_type, callback_on_step_end, camera, actions)
        return WorldPipelineOutput(frames=frames) if return_dict else (frames,)


class ARVideo2WorldPipeline(_CosmosPipeline):
    """An image or the first frames of a video (+ a prompt if the model was trained with text) -> the video
    continued by the autoregressive world model over the discrete tokenizer's tokens.

    Frames become token ids with `vae.tokenize`, `transformer.generate()` samples the following latent
    frames' tokens (sampling settings as transformers': `temperature`, `top_k`, `top_p`, `do_sample`), and
    `vae.detokenize` turns the whole sequence back into frames. A video longer than the model's context
    (`max_latent_frames`) is generated window by window: each window keeps the last latent frames that
    fit, re-encoded from position 0 (its positions are relative to the window). Conditioning longer than
    the context is cut from the left for the model (with a warning); the output still starts with it.

    A model fine-tuned for control also takes `camera=(K, poses)` or `actions` (see `prepare_control`); the
    video is then generated in one window, so `num_frames` is at most the model's context (the controls are
    relative to the clip's first frame, as in training)."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["text_encoder", "tokenizer"]

    def __init__(
        self,
        transformer: WorldARModel,
        vae: CausalVideoTokenizer,
        text_encoder: T5EncoderModel | None = None,
        tokenizer: PreTrainedTokenizerFast | None = None,
    ) -> None:
        super().__init__()
        if vae.fsq is None or tuple(vae.config.fsq_levels) != tuple(transformer.config.fsq_levels):
            raise ValueError(f"the autoregressive model needs the discrete tokenizer with FSQ levels "
                             f"{tuple(transformer.config.fsq_levels)}, got {vae.config.quantizer!r} "
                             f"{tuple(vae.config.fsq_levels)}")
        if (transformer.config.cross_attention_dim is None) != (text_encoder is None):
            raise ValueError("a text encoder (and its tokenizer) is needed exactly when the model has "
                             f"cross_attention_dim (here {transformer.config.cross_attention_dim})")
        self.register_modules(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)
        for module in (transformer, vae, text_encoder):
            if module is not None:
                module.eval()

    @property
    def latent_size(self) -> int:
        return self.transformer.config.latent_height

    def text_inputs(self, prompt: str | list[str] | None, batch_size: int) -> dict[str, Tensor]:
        """The transformer's text arguments for `prompt` (one, or one per video): none for a model trained
        without text (a prompt is then ignored)."""
        if self.transformer.config.cross_attention_dim is None:
            return {}
        if prompt is None:
            raise ValueError("this model was trained with text: pass a `prompt`")
        hidden, mask = self.encode_prompt(prompt)
        return {"encoder_hidden_states": hidden.expand(batch_size, -1, -1),
                "encoder_attention_mask": mask.expand(batch_size, -1)}

    @torch.no_grad()
    def __call__(
        self,
        image: VideoInput | None = None,
        video: VideoInput | None = None,
        prompt: str | list[str] | None = None,
        num_frames: int = 17,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        camera: tuple[Any, Any] | None = None,
        actions: Any = None,
    ) -> WorldPipelineOutput | tuple:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        c = self.transformer.config
        condition = self.preprocess_video(image, video)
        tokens = self.vae.tokenize(condition).flatten(1)  # (B, T'c * h * w), (t, h, w) order
        B, hw = tokens.shape[0], c.tokens_per_frame
        num_frames = self.valid_num_frames(num_frames)
        total = self.vae.latent_frames(num_frames)
        if total <= tokens.shape[1] // hw:
            raise ValueError(f"{condition.shape[1]} conditioning frames leave nothing to generate in "
                             f"num_frames={num_frames}: ask for more frames")
        if tokens.shape[1] // hw >= c.max_latent_frames:  # the windows below see the last frames only
            warnings.warn(f"{tokens.shape[1] // hw} conditioning latent frames exceed the model's context of "
                          f"{c.max_latent_frames}: it sees the last {c.max_latent_frames - 1}", stacklevel=2)
        control = self.prepare_control(camera, actions, num_frames, B)
        if control and total > c.max_latent_frames:
            raise ValueError(f"with camera or actions, num_frames can be at most "
                             f"{1 + (c.max_latent_frames - 1) * self.frame_groups} (the model's context of "
                             f"{c.max_latent_frames} latent frames), got {num_frames}")
        text = self.text_inputs(prompt, B)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k, "top_p": top_p} if do_sample \
            else {"do_sample": False}
        seed = int(torch.randint(2**62, (1,), generator=generator)) if generator is not None else None
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)  # generate() samples with the global generator
            while tokens.shape[1] < total * hw:
                window = tokens[:, -(c.max_latent_frames - 1) * hw:]
                new = min(total * hw - tokens.shape[1], c.max_position_embeddings - window.shape[1])
                out = self.transformer.generate(window, max_new_tokens=new, **sampling, **text, **control)
                tokens = torch.cat([tokens, out[:, window.shape[1]:]], dim=1)
        grid = tokens.view(B, -1, c.latent_height, c.latent_width)
        frames = self.vae.detokenize(grid, num_frames=1 + (grid.shape[1] - 1) * self.frame_groups).clamp(-1, 1)
        frames = postprocess_video(frames, output_type)
        return WorldPipelineOutput(frames=frames) if return_dict else (frames,)
