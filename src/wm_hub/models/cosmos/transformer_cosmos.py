"""Cosmos-style diffusion world model: a DiT over the causal video tokenizer's continuous latents.

Latent video `(B, T, C, H, W)` (our video convention, latents of `CausalVideoTokenizer`) is cut into
patches of `patch_size` (t, h, w), embedded, and run through blocks of adaLN-modulated self-attention
with 3D rotary positions, cross-attention to text embeddings and an MLP. The noise level modulates each
block per latent frame, so conditioning frames can carry their own (small) noise level, and a per-frame
condition mask enters as one more input channel, as in diffusers' Cosmos pipelines. The network is the
raw F of EDM (Karras et al. 2022): inputs are already scaled by c_in and the noise level is c_noise;
`EDMEulerScheduler`'s `precondition_*` turn its output into the denoised latents.

Control (fine-tuning, `wm_hub.models.cosmos.finetuning_cosmos`): with `camera_conditioning`, the Plücker rays
of the `frames_per_latent` video frames of each latent frame (`6 * frames_per_latent` channels on the latent
grid) are patchified like the latents and added to the patch tokens; with `action_dim`, the actions into
those frames, each beside the running sum of the actions since the clip's first frame (the agent's displacement,
so that no block has to integrate velocities over frames), are embedded by an MLP and added to the frame's
noise-level embedding, which modulates every block. Both new layers end in zeros, so a model extended from a
trained one starts by behaving exactly as it.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import Tensor, nn

from wm_hub.diffusers_utils import WorldModelMixin
from wm_hub.layers.attention import Attention, RotaryEmbedding3D
from wm_hub.layers.control import ActionEmbedding, zero_init
from wm_hub.layers.st_transformer import AdaLayerNorm, FeedForward


class WorldTransformerBlock(nn.Module):
    """`(B, L, D)` tokens -> same: self-attention (3D rotary), cross-attention to the text, MLP; each
    pre-norm scaled and shifted, and each branch gated, by the noise-level embedding (adaLN-Zero)."""

    def __init__(self, dim: int, num_heads: int, text_dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False) for _ in range(3))
        self.self_attention = Attention(dim, num_heads)
        self.cross_attention = Attention(dim, num_heads, context_dim=text_dim)
        self.mlp = FeedForward(dim, mlp_ratio)
        self.modulation = nn.Linear(dim, 9 * dim)  # shift, scale, gate for each of the three branches
        zero_init(self.modulation)  # adaLN-Zero: each block starts as the identity

    def forward(self, x: Tensor, emb: Tensor, text: Tensor, text_mask: Tensor | None, rotary) -> Tensor:
        """x `(B, L, D)`, emb `(B, L, D)` (the noise-level embedding of each token's frame)."""
        mods = self.modulation(nn.functional.silu(emb)).chunk(9, dim=-1)
        branches = (
            lambda h: self.self_attention(h, rotary=rotary),
            lambda h: self.cross_attention(h, context=text, context_mask=text_mask),
            self.mlp,
        )
        for i, (norm, branch) in enumerate(zip(self.norms, branches, strict=True)):
            shift, scale, gate = mods[3 * i: 3 * i + 3]
            x = x + gate * branch(norm(x) * (1 + scale) + shift)
        return x


class WorldTransformer3DModel(WorldModelMixin, ConfigMixin):
    """DiT denoiser F(c_in x, c_noise, text, condition mask) over latent video `(B, T, C, H, W)`."""

    config_name = "config.json"
    _supports_gradient_checkpointing = False
    _no_split_modules = ["WorldTransformerBlock"]

    @register_to_config
    def __init__(
        self,
        # Latents (the tokenizer's continuous latent channels; `sample_size` the latent height and width
        # trained on, which sets the pipelines' frame size) and patches
        in_channels: int = 16,
        sample_size: int = 8,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        # Architecture
        hidden_size: int = 256,
        num_layers: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        # Text: the width of the text encoder's hidden states
        text_dim: int = 128,
        # Conditioning frames are given with this small noise level (their noise augmentation), in
        # training and by the pipelines
        conditioning_sigma: float = 0.01,
        # Control: Plücker camera rays and/or per-step actions of `action_dim` (0: none); each latent frame
        # gets those of its `frames_per_latent` video frames (the tokenizer's temporal compression)
        camera_conditioning: bool = False,
        action_dim: int = 0,
        frames_per_latent: int = 4,
    ) -> None:
        super().__init__()
        pt, ph, pw = patch_size
        self.patch_embed = nn.Linear((in_channels + 1) * pt * ph * pw, hidden_size)  # + the condition mask
        self.camera_embed = self.action_embed = None
        if camera_conditioning:
            self.camera_embed = zero_init(nn.Linear(self.camera_channels * pt * ph * pw, hidden_size))
        if action_dim:  # per temporal patch of pt latent frames
            self.action_embed = ActionEmbedding(action_dim, frames_per_latent, hidden_size, group=pt)
        self.time_proj = Timesteps(hidden_size, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(hidden_size, hidden_size)
        self.rotary = RotaryEmbedding3D(hidden_size // num_heads)
        self.blocks = nn.ModuleList(
            WorldTransformerBlock(hidden_size, num_heads, text_dim, mlp_ratio) for _ in range(num_layers)
        )
        self.norm_out = AdaLayerNorm(hidden_size, hidden_size)  # modulated by the noise level, as each block
        self.proj_out = nn.Linear(hidden_size, in_channels * pt * ph * pw)
        for layer in (self.norm_out.to_scale_shift, self.proj_out):  # the output starts at zero
            zero_init(layer)

    @property
    def camera_channels(self) -> int:
        """Channels of the camera input per latent frame: 6 Plücker coordinates per video frame."""
        return 6 * self.config.frames_per_latent

    def _patchify(self, x: Tensor) -> Tensor:
        """`(B, T, C, H, W)` -> tokens `(B, L, C * pt * ph * pw)` in (t, h, w) order."""
        B, T, C, H, W = x.shape
        pt, ph, pw = self.config.patch_size
        x = x.reshape(B, T // pt, pt, C, H // ph, ph, W // pw, pw).permute(0, 1, 4, 6, 3, 2, 5, 7)
        return x.reshape(B, (T // pt) * (H // ph) * (W // pw), C * pt * ph * pw)

    def grid(self, latents: Tensor) -> tuple[int, int, int]:
        """The token grid (t, h, w) of latents `(B, T, C, H, W)`; raises if they do not fit the patches."""
        c = self.config
        if latents.dim() != 5 or latents.shape[2] != c.in_channels:
            raise ValueError(f"expected latents (B, T, {c.in_channels}, H, W), got shape {tuple(latents.shape)}")
        sizes = (latents.shape[1], *latents.shape[3:])
        if any(n % p for n, p in zip(sizes, c.patch_size, strict=True)):
            raise ValueError(f"latent (T, H, W) = {sizes} is not divisible by patch_size {tuple(c.patch_size)}")
        return tuple(n // p for n, p in zip(sizes, c.patch_size, strict=True))

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_attention_mask: Tensor | None = None,
        condition_mask: Tensor | None = None,
        camera: Tensor | None = None,
        actions: Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple:
        """hidden_states `(B, T, C, H, W)` (c_in-scaled noisy latents); timestep `(B,)` or per latent frame
        `(B, T)` (c_noise); encoder_hidden_states `(B, S, text_dim)` with encoder_attention_mask `(B, S)`
        (1 = token, 0 = padding); condition_mask `(B, T)` (1 = a given frame); camera `(B, T, 6 *
        frames_per_latent, H, W)` Plücker rays and actions `(B, T, frames_per_latent * action_dim)`, for models
        with that control (`wm_hub.models.cosmos.finetuning_cosmos` groups them per latent frame; None: no
        control input). Returns `(B, T, C, H, W)`."""
        B, T, C, H, W = hidden_states.shape
        gt, gh, gw = self.grid(hidden_states)
        pt, ph, pw = self.config.patch_size
        # 1. Condition mask as one more channel, then patches -> tokens
        if condition_mask is None:
            condition_mask = hidden_states.new_zeros(B, T)
        if condition_mask.shape != (B, T):
            raise ValueError(f"expected condition_mask (B, T) = ({B}, {T}), got {tuple(condition_mask.shape)}")
        mask_channel = condition_mask.to(hidden_states.dtype)[:, :, None, None, None].expand(B, T, 1, H, W)
        x = self.patch_embed(self._patchify(torch.cat([hidden_states, mask_channel], dim=2)))  # (B, L, D)
        if camera is not None:
            if self.camera_embed is None:
                raise ValueError("this model takes no camera input: fine-tune it for camera control first")
            if camera.shape != (B, T, self.camera_channels, H, W):
                raise ValueError(f"expected camera (B, T, 6 * frames_per_latent, H, W) = "
                                 f"{(B, T, self.camera_channels, H, W)}, got {tuple(camera.shape)}")
            x = x + self.camera_embed(self._patchify(camera.to(x.dtype)))
        # 2. Noise-level embedding per latent frame, broadcast to that frame's tokens
        if timestep.dim() == 0:
            timestep = timestep.expand(B)
        if timestep.dim() == 1:
            timestep = timestep[:, None].expand(B, T)
        if timestep.shape != (B, T):
            raise ValueError(f"expected timestep (B,) or (B, T) = ({B}, {T}), got {tuple(timestep.shape)}")
        emb = self.time_embed(self.time_proj(timestep[:, ::pt].flatten()).to(x.dtype)).view(B, gt, 1, -1)
        if actions is not None:
            if self.action_embed is None:
                raise ValueError("this model takes no actions: fine-tune it for action control first")
            if actions.shape[:2] != (B, T):
                raise ValueError(f"expected actions (B, T, frames_per_latent * action_dim) with (B, T) = {(B, T)}, "
                                 f"got {tuple(actions.shape)}")
            emb = emb + self.action_embed(actions.to(x.dtype))[:, :, None]  # (B, gt, 1, D)
        emb = emb.expand(B, gt, gh * gw, emb.shape[-1]).reshape(B, gt * gh * gw, -1)  # (B, L, D)
        # 3. Blocks
        text_mask = None
        if encoder_attention_mask is not None:
            text_mask = encoder_attention_mask.bool()
            text_mask = text_mask | ~text_mask.any(dim=-1, keepdim=True)  # an all-padding text: attend to all

        def rotary(t: Tensor) -> Tensor:
            return self.rotary(t, (gt, gh, gw))

        for block in self.blocks:
            x = block(x, emb, encoder_hidden_states, text_mask, rotary)
        # 4. Output: modulated norm, projection, tokens -> patches -> latents
        x = self.proj_out(self.norm_out(x, emb))  # (B, L, C*pt*ph*pw)
        x = x.view(B, gt, gh, gw, C, pt, ph, pw).permute(0, 1, 5, 4, 2, 6, 3, 7).reshape(B, T, C, H, W)
        return Transformer2DModelOutput(sample=x) if return_dict else (x,)
