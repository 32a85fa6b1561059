"""Config of DINO-WM (Zhou et al. 2024): frozen DINOv2 encoder, frame-causal ViT predictor, optional decoder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transformers import PretrainedConfig

from wm_hub.layers.planners import PLANNERS

DEFAULT_ENCODER = "facebook/dinov2-small"  # the pretrained Dinov2 DINO-WM uses, for users online

if TYPE_CHECKING:
    from transformers import Dinov2Config

__all__ = ["DinoWMConfig"]


class DinoWMConfig(PretrainedConfig):
    """DINO-WM. The observation model is a `Dinov2Model` built from `encoder_config` (a `Dinov2Config`
    dict); `encoder_name_or_path` records where its weights came from (`facebook/dinov2-small` for users
    online; the checkpoints we ship carry a small DINOv2 pre-trained here, see their cards). `image_mean` and
    `image_std` normalise [0, 1] pixels as the encoder was pre-trained to see them (ImageNet's for DINOv2)."""

    model_type = "dino_wm"

    def __init__(
        self,
        # Observation model (frozen)
        encoder_config: dict[str, Any] | None = None,
        encoder_name_or_path: str = DEFAULT_ENCODER,
        image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        image_std: tuple[float, float, float] = (0.229, 0.224, 0.225),
        # The env the model was trained on (a gymnasium id), for `wm-hub plan`; None for user data
        env_id: str | None = None,
        # Transition model: a ViT over the patch features of `history` frames, frame-causal
        history: int = 3,  # frames each predictor layer attends over (DINO-WM: H = 3)
        frame_skip: int = 5,  # env steps per model step; their actions are concatenated
        action_dim: int = 2,  # the env's action size (one step)
        action_emb_dim: int = 10,  # DINO-WM: a 10-D action embedding concatenated to every patch
        proprio_dim: int = 0,  # 0: no proprioception
        proprio_emb_dim: int = 10,
        predictor_layers: int = 6,
        predictor_heads: int = 4,
        predictor_mlp_ratio: float = 4.0,
        # Decoder (optional, for pictures; its loss never reaches the encoder)
        use_decoder: bool = True,
        decoder_channels: int = 64,
        # Training loss: prediction + proprio_loss_weight * proprio + rollout_loss_weight * the same two
        # terms along an open-loop rollout from each clip's first frame (0: teacher forcing only, DINO-WM's)
        proprio_loss_weight: float = 1.0,
        rollout_loss_weight: float = 0.0,
        # Planning: the settings the model card measured, by planner ({"cem": {"noise_beta": 2.0}}); a planner
        # made by name for this model (`DinoWMPlanner(model, "cem")`, `wm-hub plan`, the demo) starts from them
        planner_settings: dict[str, dict[str, Any]] | None = None,
        **kwargs,
    ) -> None:
        # Imported here: `transformers.Dinov2Config` loads transformers' AutoModel module, which must not
        # happen while our configs are being registered with AutoConfig.
        from transformers import Dinov2Config

        encoder = Dinov2Config(**(encoder_config or {}))
        if encoder.image_size % encoder.patch_size:
            raise ValueError(f"encoder image_size {encoder.image_size} is not a multiple of patch_size "
                             f"{encoder.patch_size}")
        if min(proprio_loss_weight, rollout_loss_weight) < 0:
            raise ValueError(f"expected loss weights >= 0, got proprio_loss_weight {proprio_loss_weight}, "
                             f"rollout_loss_weight {rollout_loss_weight}")
        if min(history, frame_skip, action_dim) < 1 or proprio_dim < 0:
            raise ValueError(f"expected history, frame_skip, action_dim >= 1 and proprio_dim >= 0, got "
                             f"{history}, {frame_skip}, {action_dim}, {proprio_dim}")
        if len(image_mean) != encoder.num_channels or len(image_std) != encoder.num_channels or min(image_std) <= 0:
            raise ValueError(f"expected image_mean and image_std of {encoder.num_channels} values (std > 0), got "
                             f"{image_mean}, {image_std}")
        planner_settings = dict(planner_settings or {})
        if not set(planner_settings) <= set(PLANNERS) or not all(isinstance(v, dict) for v in
                                                                 planner_settings.values()):
            raise ValueError(f"expected planner_settings as {{planner ({' or '.join(PLANNERS)}): {{setting: value}}}}, "
                             f"got {planner_settings}")
        self.planner_settings = planner_settings
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.encoder_config = encoder.to_diff_dict()
        self.encoder_config.pop("transformers_version", None)
        self.encoder_name_or_path, self.env_id = encoder_name_or_path, env_id
        self.history, self.frame_skip = history, frame_skip
        self.action_dim, self.action_emb_dim = action_dim, action_emb_dim
        self.proprio_dim, self.proprio_emb_dim = proprio_dim, proprio_emb_dim
        self.predictor_layers, self.predictor_heads = predictor_layers, predictor_heads
        self.predictor_mlp_ratio = predictor_mlp_ratio
        self.use_decoder, self.decoder_channels = use_decoder, decoder_channels
        self.proprio_loss_weight, self.rollout_loss_weight = proprio_loss_weight, rollout_loss_weight
        super().__init__(**kwargs)

    @property
    def dinov2_config(self) -> Dinov2Config:
        from transformers import Dinov2Config

        return Dinov2Config(**self.encoder_config)

    @property
    def embed_dim(self) -> int:
        """E, the size of a patch feature."""
        return self.encoder_config["hidden_size"]

    @property
    def num_patches(self) -> int:
        """N, patches per frame."""
        return (self.encoder_config["image_size"] // self.encoder_config["patch_size"]) ** 2

    @property
    def image_size(self) -> int:
        return self.encoder_config["image_size"]

    @property
    def predictor_dim(self) -> int:
        """The predictor's token width: patch feature + action embedding (+ proprio embedding)."""
        return self.embed_dim + self.action_emb_dim + (self.proprio_emb_dim if self.proprio_dim else 0)
