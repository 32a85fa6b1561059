"""World Models (Ha & Schmidhuber 2018): V, a convolutional VAE of 64 x 64 frames; M, an MDN-RNN that models
P(z_{t+1} | a_t, z_t, h_t); C, a linear controller a_t = W [z_t, h_t] + b trained by CMA-ES."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.utils import ModelOutput

from wm_hub.envs.pixels import resize_frame
from wm_hub.layers.distributions import mdn_log_prob, mdn_sample
from wm_hub.modeling_utils import WorldModelPreTrainedModel
from wm_hub.models.world_models.configuration_world_models import ControllerConfig, ConvVAEConfig, MDNRNNConfig

__all__ = ["ConvVAE", "MDNRNN", "Controller"]


def preprocess_frames(frames: np.ndarray, config: ConvVAEConfig) -> np.ndarray:
    """Raw env frames uint8 `(H, W, 3)` or `(N, H, W, 3)` -> V's frames uint8 `(..., 64, 64, 3)`: `frame_crop`,
    then an area-averaged resize. Frames already of V's size are taken as preprocessed and returned as they are;
    frames of any other size are cropped (if the crop fits them) and resized."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (H, W, 3) or (N, H, W, 3), got {frames.dtype} {frames.shape}")
    size = config.image_size
    if frames.shape[-3:-1] == (size, size):
        return frames
    if config.frame_crop is not None:
        top, bottom, left, right = config.frame_crop
        if bottom <= frames.shape[-3] and right <= frames.shape[-2]:
            frames = frames[..., top:bottom, left:right, :]
    if frames.ndim == 3:
        return resize_frame(frames, size)
    return np.stack([resize_frame(f, size) for f in frames])


class WorldModelsPreTrainedModel(WorldModelPreTrainedModel):
    """V and M start from PyTorch's default initialisation, as in the paper's reference code."""

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d | nn.LSTM):
            module.reset_parameters()


# ---------------------------------------------------------------------------------------------------------------
# V: the convolutional VAE


@dataclass
class ConvVAEOutput(ModelOutput):
    """`loss` (scalar, per frame), `reconstruction` `(B, 3, 64, 64)` in [-1, 1], `mu` and `logvar` `(B, latent_dim)`,
    `logs` (reconstruction and KL terms)."""

    loss: Tensor | None = None
    reconstruction: Tensor | None = None
    mu: Tensor | None = None
    logvar: Tensor | None = None
    logs: dict[str, Tensor] | None = None


class ConvVAE(WorldModelsPreTrainedModel):
    """V. `encode(frames)` -> (mu, logvar); `decode(z)` -> frames; `forward(frames)` -> the paper's loss: squared
    error summed over the pixels (in [0, 1] units) plus the KL to N(0, I), clipped below at kl_tolerance x latent_dim.
    Frames are `(B, 3, 64, 64)` float in [-1, 1]; `preprocess` turns raw uint8 env frames into them."""

    config_class = ConvVAEConfig
    base_model_prefix = "vae"
    main_input_name = "frames"

    def __init__(self, config: ConvVAEConfig) -> None:
        super().__init__(config)
        c = config.channels
        layers, cin = [], 3
        for cout in c:  # 64 -> 31 -> 14 -> 6 -> 2
            layers += [nn.Conv2d(cin, cout, 4, stride=2), nn.ReLU()]
            cin = cout
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = 4 * c[-1]  # 2 x 2 x c[-1]
        self.fc_mu = nn.Linear(flat, config.latent_dim)
        self.fc_logvar = nn.Linear(flat, config.latent_dim)
        self.fc_decode = nn.Linear(config.latent_dim, flat)
        layers, cin = [], flat
        for cout, k in zip([c[2], c[1], c[0]], (5, 5, 6), strict=True):  # 1 -> 5 -> 13 -> 30
            layers += [nn.ConvTranspose2d(cin, cout, k, stride=2), nn.ReLU()]
            cin = cout
        self.decoder = nn.Sequential(*layers, nn.ConvTranspose2d(cin, 3, 6, stride=2))  # -> 64
        self.post_init()

    def _check(self, frames: Tensor) -> None:
        s = self.config.image_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (3, s, s):
            raise ValueError(f"expected frames (B, 3, {s}, {s}) in [-1, 1], got {tuple(frames.shape)}; raw env "
                             "frames go through ConvVAE.preprocess first")

    def preprocess(self, frames: np.ndarray) -> Tensor:
        """Raw uint8 frames `(N, H, W, 3)` (any size) -> `(N, 3, 64, 64)` float in [-1, 1] on the model's device."""
        frames = preprocess_frames(frames, self.config)
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return x.movedim(-1, -3).float().div(127.5).sub(1.0)

    def encode(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """`(B, 3, 64, 64)` -> mu, logvar `(B, latent_dim)`."""
        self._check(frames)
        h = self.encoder(frames)  # (B, 4 * c[-1])
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """`(B, latent_dim)` -> frames `(B, 3, 64, 64)` in [-1, 1]."""
        h = self.fc_decode(z)[..., None, None]  # (B, 4 * c[-1], 1, 1)
        return torch.tanh(self.decoder(h))

    def forward(self, frames: Tensor, generator: torch.Generator | None = None) -> ConvVAEOutput:
        mu, logvar = self.encode(frames)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator, device=mu.device)
        recon = self.decode(z)
        # 1. reconstruction: squared error summed over pixels, in [0, 1] units as in the paper
        rec = ((recon - frames) / 2).pow(2).flatten(1).sum(1).mean()
        # 2. KL(q(z|x) || N(0, I)), summed over dimensions, at least kl_tolerance nats per dimension
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        kl_floor = self.config.kl_tolerance * self.config.latent_dim
        loss = rec + kl.clamp_min(kl_floor)
        return ConvVAEOutput(loss=loss, reconstruction=recon, mu=mu, logvar=logvar,
                             logs={"reconstruction": rec.detach(), "kl": kl.detach()})


# ---------------------------------------------------------------------------------------------------------------
# M: the MDN-RNN


@dataclass
class MDNRNNOutput(ModelOutput):
    """`loss` (scalar), `logs`, and per step t (predicting step t+1): MDN parameters `logit_pi`, `mu`, `log_sigma`
    `(B, T, D, K)`, `reward` `(B, T)`, `done_logit` `(B, T)`, and the LSTM `state` (h, c) after the last step."""

    loss: Tensor | None = None
    logs: dict[str, Tensor] | None = None
    logit_pi: Tensor | None = None
    mu: Tensor | None = None
    log_sigma: Tensor | None = None
    reward: Tensor | None = None
    done_logit: Tensor | None = None
    state: tuple[Tensor, Tensor] | None = None


class MDNRNN(WorldModelsPreTrainedModel):
    """M. An LSTM reads [z_t, a_t]; its output h_{t+1} gives, for each of the `latent_dim` dimensions of z_{t+1}, a
    mixture of `gaussians` Gaussians, and (if configured) the reward r_{t+1} and a done logit. The controller reads
    the LSTM's hidden state before it consumes (z_t, a_t)."""

    config_class = MDNRNNConfig
    base_model_prefix = "mdnrnn"
    main_input_name = "latents"

    def __init__(self, config: MDNRNNConfig) -> None:
        super().__init__(config)
        D, K = config.latent_dim, config.gaussians
        self.lstm = nn.LSTM(D + config.action_dim, config.hidden_size, batch_first=True)
        self.mdn = nn.Linear(config.hidden_size, 3 * D * K)
        self.reward_head = nn.Linear(config.hidden_size, 1) if config.predict_reward else None
        self.done_head = nn.Linear(config.hidden_size, 1) if config.predict_done else None
        self.post_init()

    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Zero LSTM state (h, c), each `(1, B, hidden_size)`."""
        zeros = torch.zeros(1, batch_size, self.config.hidden_size, device=self.device)
        return zeros, zeros.clone()

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
        """LSTM outputs `(..., hidden_size)` -> logit_pi, mu, log_sigma `(..., D, K)`, reward and done logit `(...)`."""
        D, K = self.config.latent_dim, self.config.gaussians
        logit_pi, mu, log_sigma = self.mdn(h).unflatten(-1, (3, D, K)).unbind(-3)
        reward = self.reward_head(h)[..., 0] if self.reward_head is not None else None
        done = self.done_head(h)[..., 0] if self.done_head is not None else None
        return logit_pi, mu, log_sigma.clamp(-7.0, 5.0), reward, done

    def step(self, z: Tensor, action: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step: z `(B, D)`, action `(B, A)` -> LSTM output `(B, hidden_size)` and the new state."""
        out, state = self.lstm(torch.cat([z, action], -1)[:, None], state)
        return out[:, 0], state

    @torch.no_grad()
    def sample_next(self, h: Tensor, temperature: float | None = None, generator: torch.Generator | None = None
                    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """A dream step's outcome from LSTM outputs `(B, hidden_size)`: z_{t+1} `(B, D)` drawn at `temperature`
        (default: the config's `dream_temperature`), the expected reward and the probability that the episode
        ends `(B,)`."""
        logit_pi, mu, log_sigma, reward, done = self.heads(h)
        z = mdn_sample(logit_pi, mu, log_sigma, temperature or self.config.dream_temperature, generator)
        return z, reward, torch.sigmoid(done) if done is not None else None

    def forward(
        self,
        latents: Tensor,
        actions: Tensor,
        rewards: Tensor | None = None,
        dones: Tensor | None = None,
        mask: Tensor | None = None,
        state: tuple[Tensor, Tensor] | None = None,
    ) -> MDNRNNOutput:
        """latents `(B, T+1, D)` (z_0 .. z_T), actions `(B, T, A)` (a_t taken at z_t), rewards `(B, T)` (r_{t+1}),
        dones `(B, T)` (the episode ended after a_t), mask `(B, T)` (1 where step t is real, 0 for padding). The loss
        is the MDN's negative log-likelihood of z_{t+1} averaged over dimensions, plus the reward's squared error and
        the done head's cross-entropy when they and their targets are there."""
        # 1. Check inputs
        B, T1, D = latents.shape
        if D != self.config.latent_dim or tuple(actions.shape) != (B, T1 - 1, self.config.action_dim):
            raise ValueError(f"expected latents (B, T+1, {self.config.latent_dim}) and actions (B, T, "
                             f"{self.config.action_dim}), got {tuple(latents.shape)} and {tuple(actions.shape)}")
        mask = torch.ones(B, T1 - 1, device=latents.device) if mask is None else mask.float()
        # 2. Run the LSTM over [z_t, a_t]
        out, state = self.lstm(torch.cat([latents[:, :-1], actions], -1), state)  # (B, T, hidden)
        logit_pi, mu, log_sigma, reward, done = self.heads(out)  # (B, T, D, K), (B, T)
        # 3. Losses, averaged over the real steps
        denom = mask.sum().clamp_min(1.0)
        nll = -(mdn_log_prob(logit_pi, mu, log_sigma, latents[:, 1:]).mean(-1) * mask).sum() / denom
        loss, logs = nll, {"z_nll": nll.detach()}
        if reward is not None and rewards is not None:
            r = ((reward - rewards.float()).pow(2) * mask).sum() / denom
            loss, logs["reward_mse"] = loss + self.config.reward_weight * r, r.detach()
        if done is not None and dones is not None:
            d = (F.binary_cross_entropy_with_logits(done, dones.float(), reduction="none") * mask).sum() / denom
            loss, logs["done_bce"] = loss + self.config.done_weight * d, d.detach()
        return MDNRNNOutput(loss=loss, logs=logs, logit_pi=logit_pi, mu=mu, log_sigma=log_sigma, reward=reward,
                            done_logit=done, state=state)


# ---------------------------------------------------------------------------------------------------------------
# C: the linear controller


class Controller(WorldModelPreTrainedModel):
    """C. `forward(z, h)` with z `(..., latent_dim)` and h `(..., hidden_size)` -> actions `(..., action_dim)` within
    the env's bounds. CMA-ES searches its flat parameter vector (`flat_parameters` / `load_flat_parameters`, weights
    then biases); `act_batched` evaluates many candidate vectors at once (a population in the dream)."""

    config_class = ControllerConfig
    base_model_prefix = "controller"
    main_input_name = "latents"

    def __init__(self, config: ControllerConfig) -> None:
        super().__init__(config)
        self.linear = nn.Linear(config.input_dim, config.action_dim)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)  # CMA-ES starts from the zero vector
            nn.init.zeros_(module.bias)

    def squash(self, pre: Tensor) -> Tensor:
        """Pre-activations `(..., A)` -> actions in [low, high]: tanh mapped linearly, or clipped (`clip_dims`)."""
        c = self.config
        low, high = (torch.tensor(v, dtype=pre.dtype, device=pre.device) for v in (c.action_low, c.action_high))
        clip = torch.zeros(c.action_dim, dtype=torch.bool, device=pre.device)
        clip[c.clip_dims] = True
        t = torch.tanh(pre)
        return torch.where(clip, torch.minimum(torch.maximum(t, low), high), low + (t + 1) / 2 * (high - low))

    def forward(self, latents: Tensor, hidden: Tensor) -> Tensor:
        return self.squash(self.linear(torch.cat([latents, hidden], -1)))

    def flat_parameters(self) -> np.ndarray:
        """The parameters as one float64 vector `(num_parameters_flat,)`: the weight `(A, D+H)` row by row, then
        the bias `(A,)`."""
        return torch.cat([self.linear.weight.flatten(), self.linear.bias]).detach().double().cpu().numpy()

    def load_flat_parameters(self, flat: np.ndarray | Tensor) -> None:
        flat = torch.as_tensor(np.asarray(flat), dtype=self.linear.weight.dtype)
        if flat.shape != (self.config.num_parameters_flat,):
            raise ValueError(f"expected a flat parameter vector ({self.config.num_parameters_flat},), got "
                             f"{tuple(flat.shape)}")
        A, n = self.config.action_dim, self.config.input_dim
        with torch.no_grad():
            self.linear.weight.copy_(flat[: A * n].view(A, n))
            self.linear.bias.copy_(flat[A * n:])

    def act_batched(self, flat: Tensor, latents: Tensor, hidden: Tensor) -> Tensor:
        """P candidate parameter vectors `(P, num_parameters_flat)`, latents `(P, N, D)`, hidden `(P, N, H)` ->
        actions `(P, N, A)`: candidate p acts for its N rollouts."""
        A, n = self.config.action_dim, self.config.input_dim
        weight, bias = flat[:, : A * n].view(-1, A, n), flat[:, A * n:]  # (P, A, n), (P, A)
        x = torch.cat([latents, hidden], -1)  # (P, N, n)
        return self.squash(torch.einsum("pni,pai->pna", x, weight) + bias[:, None])
