"""Configs of World Models (Ha & Schmidhuber 2018): the vision model V (a convolutional VAE), the memory M (an
MDN-RNN) and the controller C (a linear map of [z_t, h_t] to the action)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

__all__ = ["ConvVAEConfig", "MDNRNNConfig", "ControllerConfig"]


class ConvVAEConfig(PretrainedConfig):
    """V: frames `(3, image_size, image_size)` -> z of `latent_dim`. The paper's network: four stride-2 convolutions
    (kernel 4, channels 32, 64, 128, 256) to a 2 x 2 x 256 map, mu and log-variance heads; the decoder mirrors it
    with four transposed convolutions (kernels 5, 5, 6, 6)."""

    model_type = "world_models_vae"

    def __init__(
        self,
        # Architecture
        image_size: int = 64,
        latent_dim: int = 32,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        # Raw frames -> V's input: rows [top, bottom) and columns [left, right) are kept before resizing to
        # image_size. CarRacing: the paper drops the 12-row dashboard at the bottom of the 96 x 96 frame.
        frame_crop: tuple[int, int, int, int] | None = None,
        # Training: loss = squared error summed over pixels + KL, the KL clipped below at kl_tolerance * latent_dim
        # nats (the paper's 0.5), so z keeps detail instead of collapsing to the prior
        kl_tolerance: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if image_size != 64:
            raise ValueError(f"the paper's VAE takes 64 x 64 frames; got image_size {image_size}")
        if len(channels) != 4 or min(channels) < 1 or latent_dim < 1:
            raise ValueError(f"expected 4 positive channel counts and latent_dim >= 1, got {channels}, {latent_dim}")
        if frame_crop is not None and (len(frame_crop) != 4 or not (0 <= frame_crop[0] < frame_crop[1])
                                       or not (0 <= frame_crop[2] < frame_crop[3])):
            raise ValueError(f"expected frame_crop (top, bottom, left, right) with top < bottom, left < right, "
                             f"got {frame_crop}")
        self.image_size, self.latent_dim, self.channels = image_size, latent_dim, list(channels)
        self.frame_crop = list(frame_crop) if frame_crop is not None else None
        self.kl_tolerance = kl_tolerance
        super().__init__(**kwargs)


class MDNRNNConfig(PretrainedConfig):
    """M: an LSTM over [z_t, a_t] whose output h_t parameterises P(z_{t+1} | a_t, z_t, h_t) as a mixture of
    `gaussians` Gaussians per latent dimension; optional heads predict the reward r_{t+1} (squared error) and
    whether the episode ends at t+1 (Bernoulli), which training the controller in the dream needs."""

    model_type = "world_models_mdnrnn"

    def __init__(
        self,
        # Architecture
        latent_dim: int = 32,
        action_dim: int = 3,
        hidden_size: int = 256,
        gaussians: int = 5,
        predict_reward: bool = True,
        predict_done: bool = True,
        # Sampling: mixture weights softmax(logits / tau), std times sqrt(tau); the paper's tau range is 0.1 to 1.3.
        # (Not `temperature`: transformers reserves that name for generation configs.)
        dream_temperature: float = 1.0,
        # Training: weights of the reward and done terms beside the MDN's negative log-likelihood per dimension
        reward_weight: float = 1.0,
        done_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if min(latent_dim, action_dim, hidden_size, gaussians) < 1:
            raise ValueError(f"expected latent_dim, action_dim, hidden_size, gaussians >= 1, got {latent_dim}, "
                             f"{action_dim}, {hidden_size}, {gaussians}")
        if dream_temperature <= 0:
            raise ValueError(f"expected dream_temperature > 0, got {dream_temperature}")
        self.latent_dim, self.action_dim, self.hidden_size, self.gaussians = latent_dim, action_dim, hidden_size, \
            gaussians
        self.predict_reward, self.predict_done, self.dream_temperature = predict_reward, predict_done, \
            dream_temperature
        self.reward_weight, self.done_weight = reward_weight, done_weight
        super().__init__(**kwargs)


class ControllerConfig(PretrainedConfig):
    """C: a_t = squash(W [z_t, h_t] + b), one linear layer ((latent_dim + hidden_size + 1) x action_dim parameters,
    867 for CarRacing) trained by CMA-ES. `squash` is tanh, then each action dimension is mapped to the env's
    bounds `action_low`..`action_high` the paper's way: a dimension whose range is [0, 1] (CarRacing's gas) gets
    (tanh + 1) / 2, one whose range is [-1, 1] stays tanh, other ranges are scaled linearly from [-1, 1];
    dimensions listed in `clip_dims` are clipped to their range instead (CarRacing's brake: clip(tanh, 0, 1),
    so braking is off for half of the pre-activations)."""

    model_type = "world_models_controller"

    def __init__(
        self,
        latent_dim: int = 32,
        hidden_size: int = 256,
        action_dim: int = 3,
        action_low: tuple[float, ...] = (-1.0, 0.0, 0.0),
        action_high: tuple[float, ...] = (1.0, 1.0, 1.0),
        clip_dims: tuple[int, ...] = (2,),
        env_id: str | None = None,  # the gymnasium id it was trained for, for `wm-hub eval`
        **kwargs: Any,
    ) -> None:
        if len(action_low) != action_dim or len(action_high) != action_dim:
            raise ValueError(f"expected action_low and action_high of length action_dim={action_dim}, got "
                             f"{list(action_low)} and {list(action_high)}")
        if any(lo >= hi for lo, hi in zip(action_low, action_high, strict=True)):
            raise ValueError(f"expected action_low < action_high, got {list(action_low)}, {list(action_high)}")
        if any(not 0 <= d < action_dim for d in clip_dims):
            raise ValueError(f"clip_dims {list(clip_dims)} name dimensions outside 0..{action_dim - 1}")
        self.latent_dim, self.hidden_size, self.action_dim = latent_dim, hidden_size, action_dim
        self.action_low, self.action_high = [float(v) for v in action_low], [float(v) for v in action_high]
        self.clip_dims, self.env_id = [int(d) for d in clip_dims], env_id
        super().__init__(**kwargs)

    @property
    def input_dim(self) -> int:
        return self.latent_dim + self.hidden_size

    @property
    def num_parameters_flat(self) -> int:
        """Length of the flat parameter vector CMA-ES searches: weights then biases."""
        return (self.input_dim + 1) * self.action_dim
