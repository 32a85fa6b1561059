"""Config of DreamerV3 (Hafner et al. 2023): RSSM world model and actor-critic learning in imagination."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

__all__ = ["DreamerConfig"]

# Model sizes of the reference implementation's configs (danijar/dreamerv3, configs.yaml): RSSM deterministic
# size, RSSM hidden units, classes per latent (32 latents), CNN base depth, MLP units.
PRESETS: dict[str, dict[str, int]] = {
    "size1m": {"deter": 512, "hidden": 64, "classes": 4, "cnn_depth": 4, "units": 64},
    "size12m": {"deter": 2048, "hidden": 256, "classes": 16, "cnn_depth": 16, "units": 256},
    "size25m": {"deter": 3072, "hidden": 384, "classes": 24, "cnn_depth": 24, "units": 384},
    "size50m": {"deter": 4096, "hidden": 512, "classes": 32, "cnn_depth": 32, "units": 512},
    "size100m": {"deter": 6144, "hidden": 768, "classes": 48, "cnn_depth": 48, "units": 768},
    "size200m": {"deter": 8192, "hidden": 1024, "classes": 64, "cnn_depth": 64, "units": 1024},
}


class DreamerConfig(PretrainedConfig):
    """DreamerV3. Observations are vectors (`obs_shape` `(D,)`, symlog-encoded by an MLP) or images
    (`obs_shape` `(C, H, W)` with H = W a power of two >= 16, by a CNN); actions are discrete (`action_dim`
    choices, one-hot) or continuous (`action_dim` values in [-1, 1]). `DreamerConfig.from_preset("size12m",
    ...)` takes the reference's model sizes."""

    model_type = "dreamer"

    def __init__(
        self,
        # Spaces
        obs_shape: tuple[int, ...] = (4,),
        action_dim: int = 2,
        discrete_actions: bool = True,
        env_id: str | None = None,  # the gymnasium id it was trained on, for `wm-hub eval`
        # RSSM: h_t = f(h_{t-1}, z_{t-1}, a_{t-1}) (block GRU); z_t: `stoch` categoricals of `classes`
        deter: int = 512,
        hidden: int = 64,
        stoch: int = 32,
        classes: int = 4,
        blocks: int = 8,
        unimix: float = 0.01,  # uniform mix of the latent and policy categoricals
        # Encoder, decoder and heads
        units: int = 64,
        mlp_layers: int = 2,  # MLP encoder / decoder layers
        head_layers: int = 1,  # reward and continue heads
        ac_layers: int = 3,  # actor and critic
        cnn_depth: int = 4,  # image encoder / decoder base channels (times 2, 3, 4, 4 per stage)
        bins: int = 255,  # symexp two-hot bins of the reward head and critic
        # World-model loss (paper: prediction 1, dynamics 0.5, representation 0.1, free bits 1 nat)
        pred_scale: float = 1.0,
        dyn_scale: float = 0.5,
        rep_scale: float = 0.1,
        free_nats: float = 1.0,
        # Actor-critic in imagination
        imag_horizon: int = 15,
        horizon: int = 333,  # discount gamma = 1 - 1/horizon (0.997)
        lam: float = 0.95,
        actor_entropy: float = 3e-4,
        slow_critic_rate: float = 0.02,  # EMA rate of the slow critic
        slow_critic_reg: float = 1.0,  # weight of the critic's regulariser towards the slow critic
        retnorm_rate: float = 0.01,  # EMA rate of the 5th-95th percentile return range
        retnorm_low: float = 5.0,
        retnorm_high: float = 95.0,
        min_std: float = 0.1,  # continuous actions: Normal std range, mean squashed by tanh
        max_std: float = 1.0,
        **kwargs: Any,
    ) -> None:
        obs_shape = tuple(int(s) for s in obs_shape)
        if len(obs_shape) == 3:
            size = obs_shape[1]
            if obs_shape[1] != obs_shape[2] or size < 16 or size & (size - 1):
                raise ValueError(f"expected image observations (C, H, W) with H = W a power of two >= 16, got "
                                 f"{obs_shape}")
        elif len(obs_shape) != 1:
            raise ValueError(f"expected obs_shape (D,) for vectors or (C, H, W) for images, got {obs_shape}")
        if deter % blocks:
            raise ValueError(f"deter ({deter}) must be a multiple of blocks ({blocks})")
        if min(action_dim, stoch, classes, units, imag_horizon, horizon) < 1:
            raise ValueError("expected action_dim, stoch, classes, units, imag_horizon and horizon >= 1, got "
                             f"{action_dim}, {stoch}, {classes}, {units}, {imag_horizon}, {horizon}")
        if not 0 < min_std <= max_std:
            raise ValueError(f"expected 0 < min_std <= max_std, got {min_std}, {max_std}")
        self.obs_shape, self.action_dim, self.discrete_actions, self.env_id = list(obs_shape), action_dim, \
            discrete_actions, env_id
        self.deter, self.hidden, self.stoch, self.classes, self.blocks = deter, hidden, stoch, classes, blocks
        self.unimix = unimix
        self.units, self.mlp_layers, self.head_layers, self.ac_layers = units, mlp_layers, head_layers, ac_layers
        self.cnn_depth, self.bins = cnn_depth, bins
        self.pred_scale, self.dyn_scale, self.rep_scale, self.free_nats = pred_scale, dyn_scale, rep_scale, free_nats
        self.imag_horizon, self.horizon, self.lam = imag_horizon, horizon, lam
        self.actor_entropy, self.slow_critic_rate, self.slow_critic_reg = actor_entropy, slow_critic_rate, \
            slow_critic_reg
        self.retnorm_rate, self.retnorm_low, self.retnorm_high = retnorm_rate, retnorm_low, retnorm_high
        self.min_std, self.max_std = min_std, max_std
        super().__init__(**kwargs)

    @classmethod
    def from_preset(cls, preset: str, **kwargs: Any) -> DreamerConfig:
        """A config of one of the reference's model sizes (`PRESETS`), with `kwargs` on top."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **kwargs})

    @property
    def is_image(self) -> bool:
        return len(self.obs_shape) == 3

    @property
    def gamma(self) -> float:
        return 1.0 - 1.0 / self.horizon

    @property
    def feature_dim(self) -> int:
        """Size of the model state [h_t, z_t] the heads, actor and critic read."""
        return self.deter + self.stoch * self.classes
