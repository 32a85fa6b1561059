"""DreamerV3 (Hafner et al. 2023): a recurrent state-space model (RSSM) learned from replayed experience,
and an actor-critic trained on trajectories the model imagines.

Shapes: B batch, T time, D observation size (vectors) or (C, H, W) (images, float in [-1, 1]), A action size
(one-hot for discrete actions), S x K categorical latents, F = deter + S * K the model-state features.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.utils import ModelOutput

from wm_hub.layers.distributions import (
    SymexpTwoHot,
    categorical_entropy,
    categorical_kl,
    sample_one_hot,
    symlog,
    twohot_bins,
    unimix_logits,
)
from wm_hub.modeling_utils import WorldModelPreTrainedModel
from wm_hub.models.dreamer.configuration_dreamer import DreamerConfig

__all__ = ["DreamerWorldModel", "DreamerAgent"]


def _mlp(in_dim: int, units: int, layers: int, out_dim: int | None = None, out_scale: float = 1.0) -> nn.Sequential:
    """`layers` x (Linear, LayerNorm, SiLU), then a Linear to `out_dim` if given, whose initial weights are
    scaled by `out_scale` (DreamerV3: 0 for the reward head and critic, which start predicting zero; 0.01 for
    the actor, which starts near uniform)."""
    modules: list[nn.Module] = []
    for i in range(layers):
        modules += [nn.Linear(in_dim if i == 0 else units, units), nn.LayerNorm(units), nn.SiLU()]
    if out_dim is not None:
        out = nn.Linear(units if layers else in_dim, out_dim)
        out.init_scale = out_scale
        modules.append(out)
    return nn.Sequential(*modules)


# ---------------------------------------------------------------------------------------------
# Encoder and decoder
# ---------------------------------------------------------------------------------------------


def _cnn_channels(config: DreamerConfig) -> list[int]:
    """Channels per stride-2 stage, from the image size down to 4x4: cnn_depth x (2, 3, 4, 4, 4, ...)."""
    stages = int(math.log2(config.obs_shape[1] // 4))
    return [config.cnn_depth * m for m in ([2, 3] + [4] * stages)[:stages]]


class Encoder(nn.Module):
    """Observations `(..., *obs_shape)` -> embeddings `(..., E)`: symlog + MLP for vectors, a CNN of stride-2
    convolutions down to 4x4 for images."""

    def __init__(self, config: DreamerConfig) -> None:
        super().__init__()
        self.obs_shape = tuple(config.obs_shape)
        if config.is_image:
            layers: list[nn.Module] = []
            in_ch = config.obs_shape[0]
            for ch in _cnn_channels(config):
                layers += [nn.Conv2d(in_ch, ch, 4, 2, 1), nn.GroupNorm(1, ch), nn.SiLU()]
                in_ch = ch
            self.net = nn.Sequential(*layers, nn.Flatten())
            self.out_dim = in_ch * 16
        else:
            self.net = _mlp(config.obs_shape[0], config.units, config.mlp_layers)
            self.out_dim = config.units

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        x = obs.reshape(-1, *self.obs_shape)
        x = self.net(x if len(self.obs_shape) == 3 else symlog(x))
        return x.reshape(*lead, -1)


class Decoder(nn.Module):
    """Features `(..., F)` -> predicted observations `(..., *obs_shape)` (vectors in symlog space)."""

    def __init__(self, config: DreamerConfig) -> None:
        super().__init__()
        self.obs_shape = tuple(config.obs_shape)
        if config.is_image:
            channels = _cnn_channels(config)[::-1]
            self.stem = nn.Linear(config.feature_dim, channels[0] * 16)
            layers: list[nn.Module] = []
            for ch, out in zip(channels, channels[1:], strict=False):
                layers += [nn.GroupNorm(1, ch), nn.SiLU(), nn.ConvTranspose2d(ch, out, 4, 2, 1)]
            layers += [nn.GroupNorm(1, channels[-1]), nn.SiLU(),
                       nn.ConvTranspose2d(channels[-1], config.obs_shape[0], 4, 2, 1)]
            self.net = nn.Sequential(*layers)
            self.first = channels[0]
        else:
            self.net = _mlp(config.feature_dim, config.units, config.mlp_layers, config.obs_shape[0])

    def forward(self, features: Tensor) -> Tensor:
        lead = features.shape[:-1]
        x = features.reshape(-1, features.shape[-1])
        if len(self.obs_shape) == 3:
            x = self.net(self.stem(x).reshape(-1, self.first, 4, 4))
        else:
            x = self.net(x)
        return x.reshape(*lead, *self.obs_shape)


# ---------------------------------------------------------------------------------------------
# RSSM
# ---------------------------------------------------------------------------------------------


@dataclass
class RSSMState:
    """Model state: `deter` h `(..., deter)`, one-hot `stoch` z `(..., S, K)` and its `logits` `(..., S, K)`."""

    deter: Tensor
    stoch: Tensor
    logits: Tensor

    @property
    def features(self) -> Tensor:
        """`(..., F)` = [h, flattened z]."""
        return torch.cat([self.deter, self.stoch.flatten(-2)], -1)

    def map(self, fn: Callable[[Tensor], Tensor]) -> RSSMState:
        return RSSMState(fn(self.deter), fn(self.stoch), fn(self.logits))

    @staticmethod
    def stack(states: list[RSSMState], dim: int) -> RSSMState:
        return RSSMState(*(torch.stack([getattr(s, k) for s in states], dim) for k in ("deter", "stoch", "logits")))


class BlockGRU(nn.Module):
    """The sequence model's recurrent cell: a GRU whose recurrent weights are block-diagonal (DreamerV3), so
    `blocks` groups of deter/blocks units each read their own slice of h and all of the input; layer-normed
    gates and an update-gate bias of -1 (the state is kept by default)."""

    def __init__(self, in_dim: int, deter: int, hidden: int, blocks: int) -> None:
        super().__init__()
        self.blocks, self.size = blocks, deter // blocks
        self.inp = _mlp(in_dim, hidden, 1)
        self.inp_gates = nn.Linear(hidden, 3 * deter)  # the input's share of every block's gates
        self.rec_weight = nn.Parameter(torch.empty(blocks, self.size, 3 * self.size))  # block-diagonal h -> gates
        self.norm = nn.LayerNorm(3 * self.size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.rec_weight, std=self.size ** -0.5)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        """h `(B, deter)`, x `(B, in_dim)` -> the next h `(B, deter)`."""
        b = h.shape[0]
        hb = h.reshape(b, self.blocks, self.size).transpose(0, 1)  # (blocks, B, size)
        from_x = self.inp_gates(self.inp(x)).reshape(b, self.blocks, -1).transpose(0, 1)  # (blocks, B, 3 size)
        gates = self.norm(torch.baddbmm(from_x, hb, self.rec_weight))  # (blocks, B, 3 size)
        reset, cand, update = gates.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        return (update * cand + (1 - update) * hb).transpose(0, 1).reshape(h.shape)


class RSSM(nn.Module):
    """Sequence model h_t = f(h_{t-1}, z_{t-1}, a_{t-1}), dynamics predictor p(z_t | h_t) (the prior) and
    encoder q(z_t | h_t, e_t) (the posterior) over S categoricals of K classes mixed with 1 % uniform."""

    def __init__(self, config: DreamerConfig, embed_dim: int) -> None:
        super().__init__()
        self.stoch, self.classes, self.deter, self.unimix = config.stoch, config.classes, config.deter, config.unimix
        self.action_dim = config.action_dim
        self.cell = BlockGRU(config.stoch * config.classes + config.action_dim, config.deter, config.hidden,
                             config.blocks)
        self.prior_head = _mlp(config.deter, config.hidden, 1, config.stoch * config.classes)
        self.post_head = _mlp(config.deter + embed_dim, config.hidden, 1, config.stoch * config.classes)

    def initial(self, batch_size: int, device: torch.device | None = None) -> RSSMState:
        zeros = torch.zeros(batch_size, self.stoch, self.classes, device=device)
        return RSSMState(torch.zeros(batch_size, self.deter, device=device), zeros, zeros.clone())

    def _latent(self, raw: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        logits = unimix_logits(raw.reshape(*raw.shape[:-1], self.stoch, self.classes), self.unimix)
        return sample_one_hot(logits, generator), logits

    def img_step(self, state: RSSMState, action: Tensor, generator: torch.Generator | None = None) -> RSSMState:
        """One imagined step: the prior state after `action` `(B, A)`."""
        deter = self.cell(state.deter, torch.cat([state.stoch.flatten(-2), action], -1))
        stoch, logits = self._latent(self.prior_head(deter), generator)
        return RSSMState(deter, stoch, logits)

    def obs_step(
        self, state: RSSMState, prev_action: Tensor, embed: Tensor, is_first: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[RSSMState, Tensor]:
        """One filtering step: state and action `(B, A)` before this observation's `embed` `(B, E)`; where
        `is_first` `(B,)`, the episode starts afresh. Returns the posterior state and the prior logits."""
        keep = (~is_first.bool()).to(embed.dtype)
        state = state.map(lambda t: t * keep.view(-1, *([1] * (t.dim() - 1))))
        prev_action = prev_action * keep[:, None]
        deter = self.cell(state.deter, torch.cat([state.stoch.flatten(-2), prev_action], -1))
        prior_logits = unimix_logits(
            self.prior_head(deter).reshape(-1, self.stoch, self.classes), self.unimix)
        stoch, logits = self._latent(self.post_head(torch.cat([deter, embed], -1)), generator)
        return RSSMState(deter, stoch, logits), prior_logits

    def observe(
        self, embeds: Tensor, prev_actions: Tensor, is_first: Tensor, state: RSSMState | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[RSSMState, Tensor]:
        """Filter a sequence: embeds `(B, T, E)`, prev_actions `(B, T, A)`, is_first `(B, T)` -> posterior
        states `(B, T, ...)` and prior logits `(B, T, S, K)`."""
        state = state or self.initial(embeds.shape[0], embeds.device)
        posts, priors = [], []
        for t in range(embeds.shape[1]):
            state, prior = self.obs_step(state, prev_actions[:, t], embeds[:, t], is_first[:, t], generator)
            posts.append(state)
            priors.append(prior)
        return RSSMState.stack(posts, 1), torch.stack(priors, 1)


# ---------------------------------------------------------------------------------------------
# World model
# ---------------------------------------------------------------------------------------------


class DreamerPreTrainedModel(WorldModelPreTrainedModel):
    config_class = DreamerConfig
    base_model_prefix = "dreamer"
    main_input_name = "obs"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            fan_in = module.weight[0].numel() if isinstance(module, nn.Linear | nn.Conv2d) else \
                module.weight.shape[0] * module.weight[0, 0].numel()
            scale = getattr(module, "init_scale", 1.0)
            if scale:
                nn.init.trunc_normal_(module.weight, std=fan_in ** -0.5 * scale)
            else:
                nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm | nn.GroupNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, BlockGRU):
            module.reset_parameters()


@dataclass
class DreamerWorldModelOutput(ModelOutput):
    """`loss` (scalar), `logs` (named scalar terms), `posterior` states `(B, T, ...)` for imagination."""

    loss: Tensor | None = None
    logs: dict[str, Tensor] | None = None
    posterior: RSSMState | None = None


class DreamerWorldModel(DreamerPreTrainedModel):
    """The world model: encoder, RSSM, decoder, reward head (symexp two-hot) and continue head (Bernoulli).

    `forward(obs, prev_actions, rewards, is_first, is_terminal)` with obs `(B, T, *obs_shape)`, prev_actions
    `(B, T, A)` (the action before each observation, zero at episode starts), rewards, is_first and is_terminal
    `(B, T)` returns the DreamerV3 loss: prediction (reconstruction, reward, continue) + 0.5 dynamics + 0.1
    representation, the KL terms clipped below at 1 nat (free bits) with stop-gradients on one side each.
    """

    def __init__(self, config: DreamerConfig) -> None:
        super().__init__(config)
        self.encoder = Encoder(config)
        self.rssm = RSSM(config, self.encoder.out_dim)
        self.decoder = Decoder(config)
        self.reward_head = _mlp(config.feature_dim, config.units, config.head_layers, config.bins, out_scale=0.0)
        self.continue_head = _mlp(config.feature_dim, config.units, config.head_layers, 1)
        self.post_init()

    def check_obs(self, obs: Tensor, lead: int) -> None:
        expected = tuple(self.config.obs_shape)
        if obs.dim() != lead + len(expected) or tuple(obs.shape[lead:]) != expected:
            dims = ", ".join(["B", "T"][:lead] + [str(s) for s in expected])
            raise ValueError(f"expected observations ({dims}), got shape {tuple(obs.shape)}")

    @property
    def bins(self) -> Tensor:
        """`(bins,)` the symlog-space bin centres of the reward head and critic (computed, not stored)."""
        return twohot_bins(self.config.bins).to(self.continue_head[-1].weight.device)

    def reward(self, features: Tensor) -> SymexpTwoHot:
        return SymexpTwoHot(self.reward_head(features), self.bins)

    def continue_prob(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self.continue_head(features)[..., 0])

    def forward(
        self, obs: Tensor, prev_actions: Tensor, rewards: Tensor, is_first: Tensor, is_terminal: Tensor,
        state: RSSMState | None = None, generator: torch.Generator | None = None,
    ) -> DreamerWorldModelOutput:
        # 1. Check inputs
        self.check_obs(obs, 2)
        b, t = obs.shape[:2]
        if prev_actions.shape != (b, t, self.config.action_dim):
            raise ValueError(f"expected prev_actions ({b}, {t}, {self.config.action_dim}), got "
                             f"{tuple(prev_actions.shape)}")
        # 2. Filter the sequence through the RSSM
        post, prior_logits = self.rssm.observe(self.encoder(obs), prev_actions, is_first, state, generator)
        features = post.features  # (B, T, F)
        # 3. Prediction loss: observations (symlog for vectors), rewards, continuation
        target = obs if self.config.is_image else symlog(obs)
        recon = (self.decoder(features) - target).pow(2).flatten(2).sum(-1)  # (B, T)
        reward = -self.reward(features).log_prob(rewards)
        cont = F.binary_cross_entropy_with_logits(
            self.continue_head(features)[..., 0], 1.0 - is_terminal.to(features.dtype), reduction="none")
        # 4. KL terms with stop-gradients and free bits
        dyn = categorical_kl(post.logits.detach(), prior_logits)  # trains the prior
        rep = categorical_kl(post.logits, prior_logits.detach())  # trains the encoder
        c = self.config
        loss = (c.pred_scale * (recon + reward + cont) + c.dyn_scale * dyn.clamp_min(c.free_nats)
                + c.rep_scale * rep.clamp_min(c.free_nats)).mean()
        logs = {"recon": recon.mean(), "reward": reward.mean(), "cont": cont.mean(), "kl": dyn.mean(),
                "posterior_entropy": categorical_entropy(post.logits).sum(-1).mean()}
        return DreamerWorldModelOutput(loss=loss, logs={k: v.detach() for k, v in logs.items()}, posterior=post)

    @torch.no_grad()
    def imagine(
        self, start: RSSMState, policy: Callable[[Tensor], Tensor], horizon: int,
        generator: torch.Generator | None = None,
    ) -> tuple[RSSMState, Tensor]:
        """Roll the prior forward from `start` `(N, ...)` for `horizon` steps, acting with `policy` (features
        `(N, F)` -> actions `(N, A)`): states `(H+1, N, ...)` (the start first) and actions `(H, N, A)`."""
        states, actions = [start], []
        for _ in range(horizon):
            actions.append(policy(states[-1].features))
            states.append(self.rssm.img_step(states[-1], actions[-1], generator))
        return RSSMState.stack(states, 0), torch.stack(actions, 0)


# ---------------------------------------------------------------------------------------------
# Actor-critic
# ---------------------------------------------------------------------------------------------


class Actor(nn.Module):
    """pi(a | s): a categorical with 1 % uniform mix (discrete actions) or a Normal with tanh-squashed mean
    and a bounded std, samples clipped to [-1, 1] (continuous)."""

    def __init__(self, config: DreamerConfig) -> None:
        super().__init__()
        self.discrete, self.unimix = config.discrete_actions, config.unimix
        self.min_std, self.max_std = config.min_std, config.max_std
        out = config.action_dim * (1 if self.discrete else 2)
        self.net = _mlp(config.feature_dim, config.units, config.ac_layers, out, out_scale=0.01)

    def forward(self, features: Tensor) -> Tensor:
        """Distribution parameters: logits `(..., A)` or [mean, std] `(..., 2A)`."""
        out = self.net(features)
        if self.discrete:
            return unimix_logits(out, self.unimix)
        mean, std = out.chunk(2, -1)
        std = self.min_std + (self.max_std - self.min_std) * torch.sigmoid(std + 2.0)
        return torch.cat([torch.tanh(mean), std], -1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None, mode: bool = False) -> Tensor:
        """Actions `(..., A)` (one-hot for discrete); `mode`: the most likely action instead of a sample."""
        if self.discrete:
            if mode:
                return F.one_hot(params.argmax(-1), params.shape[-1]).to(params.dtype)
            return sample_one_hot(params.detach(), generator).detach()
        mean, std = params.chunk(2, -1)
        if mode:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + std * noise).clamp(-1, 1).detach()

    def log_prob_entropy(self, params: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probability of `actions` and the policy's entropy, both `(...)`."""
        if self.discrete:
            return (actions * params.log_softmax(-1)).sum(-1), categorical_entropy(params)
        mean, std = params.chunk(2, -1)
        dist = torch.distributions.Normal(mean, std)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


class Critic(nn.Module):
    """v(s) as a symexp two-hot distribution over returns; its output layer starts at zero."""

    def __init__(self, config: DreamerConfig) -> None:
        super().__init__()
        self.net = _mlp(config.feature_dim, config.units, config.ac_layers, config.bins, out_scale=0.0)

    def forward(self, features: Tensor, bins: Tensor) -> SymexpTwoHot:
        return SymexpTwoHot(self.net(features), bins)


def lambda_returns(rewards: Tensor, values: Tensor, discounts: Tensor, lam: float) -> Tensor:
    """TD(lambda) returns `(H, N)`: R_t = r_{t+1} + d_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H, from
    rewards and discounts `(H, N)` (of steps 1..H) and values `(H+1, N)` (of steps 0..H)."""
    returns = [values[-1]]
    for t in reversed(range(rewards.shape[0])):
        returns.append(rewards[t] + discounts[t] * ((1 - lam) * values[t + 1] + lam * returns[-1]))
    return torch.stack(returns[:0:-1], 0)


@dataclass
class ActorCriticOutput(ModelOutput):
    """`loss` = actor + critic loss (they share no parameters), `logs` (named scalars)."""

    loss: Tensor | None = None
    logs: dict[str, Tensor] | None = None


class DreamerAgent(DreamerPreTrainedModel):
    """A DreamerV3 agent: the world model, an actor and a critic (with its slow EMA copy), and the running
    5th-95th percentile return range that normalises advantages.

    Acting: `state = agent.reset(n)`, then `action, state = agent.act(obs, state)` each step, obs
    `(n, *obs_shape)`, actions `(n, A)` (one-hot or in [-1, 1]). Learning: `agent.world_model(...)` on replayed
    sequences, `agent.actor_critic_loss(posterior, is_terminal)` on the imagined continuations of its states.
    """

    def __init__(self, config: DreamerConfig) -> None:
        super().__init__(config)
        self.world_model = DreamerWorldModel(config)
        self.actor = Actor(config)
        self.critic = Critic(config)
        self.register_buffer("return_range", torch.zeros(2))  # EMA of the 5th and 95th percentile
        self.post_init()
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)

    # Acting -------------------------------------------------------------------------------------

    def reset(self, batch_size: int = 1) -> dict[str, object]:
        """The acting state at the start of `batch_size` episodes."""
        device = self.return_range.device
        return {"rssm": self.world_model.rssm.initial(batch_size, device),
                "action": torch.zeros(batch_size, self.config.action_dim, device=device),
                "first": torch.ones(batch_size, dtype=torch.bool, device=device)}

    @torch.no_grad()
    def act(
        self, obs: Tensor, state: dict[str, object], mode: bool = False, generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, object]]:
        """Filter `obs` `(n, *obs_shape)` into the model state and pick actions `(n, A)` (sampled, or the
        policy's mode). Mark episodes that restart with `state["first"][i] = True`."""
        wm = self.world_model
        wm.check_obs(obs, 1)
        post, _ = wm.rssm.obs_step(state["rssm"], state["action"], wm.encoder(obs), state["first"], generator)
        action = self.actor.sample(self.actor(post.features), generator, mode)
        return action, {"rssm": post, "action": action, "first": torch.zeros_like(state["first"])}

    # Learning -----------------------------------------------------------------------------------

    def actor_critic_loss(
        self, posterior: RSSMState, is_terminal: Tensor, generator: torch.Generator | None = None,
    ) -> ActorCriticOutput:
        """Imagine `imag_horizon` steps from every posterior state `(B, T, ...)` (the world model is not
        trained by this loss), then: critic -> lambda-returns (two-hot, plus a pull towards the slow critic);
        actor -> REINFORCE with advantages over max(1, return range) and an entropy bonus. Steps after a
        predicted episode end are down-weighted by the cumulative continue probability."""
        c = self.config
        wm = self.world_model
        start = posterior.map(lambda t: t.detach().flatten(0, 1))  # (N, ...)
        # 1. Imagine with the current actor
        states, actions = wm.imagine(start, lambda f: self.actor.sample(self.actor(f), generator), c.imag_horizon,
                                     generator)
        features = states.features  # (H+1, N, F)
        bins = wm.bins
        value_dist = self.critic(features, bins)  # (H+1, N)
        with torch.no_grad():
            values = value_dist.mean()
            rewards = wm.reward(features[1:]).mean()  # (H, N)
            cont = wm.continue_prob(features[1:])
            cont0 = 1.0 - is_terminal.flatten().to(cont.dtype)
            discounts = c.gamma * cont
            weights = torch.cumprod(torch.cat([cont0[None], discounts[:-1]], 0), 0)  # (H, N)
            returns = lambda_returns(rewards, values, discounts, c.lam)
            # 2. Return normalisation: EMA of the 5th-95th percentile range
            quantiles = torch.quantile(returns.flatten().float(),
                                       torch.tensor([c.retnorm_low, c.retnorm_high], device=returns.device) / 100)
            self.return_range.lerp_(quantiles, c.retnorm_rate)
            scale = (self.return_range[1] - self.return_range[0]).clamp_min(1.0)
            advantages = (returns - values[:-1]) / scale
            slow = self.slow_critic(features[:-1], bins).mean()
        # 3. Actor: REINFORCE + entropy bonus
        log_prob, entropy = self.actor.log_prob_entropy(self.actor(features[:-1]), actions)
        actor_loss = -(weights * (advantages * log_prob + c.actor_entropy * entropy)).mean()
        # 4. Critic: two-hot regression of the returns, regularised towards the slow critic
        value_dist = SymexpTwoHot(value_dist.logits[:-1], bins)
        critic_loss = -(weights * (value_dist.log_prob(returns)
                                   + c.slow_critic_reg * value_dist.log_prob(slow))).mean()
        logs = {"actor_loss": actor_loss, "critic_loss": critic_loss, "entropy": entropy.mean(),
                "imag_return": returns.mean(), "return_scale": scale, "imag_reward": rewards.mean()}
        return ActorCriticOutput(loss=actor_loss + critic_loss, logs={k: v.detach() for k, v in logs.items()})

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """slow <- (1 - rate) slow + rate critic."""
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
            slow.lerp_(fast, self.config.slow_critic_rate)
