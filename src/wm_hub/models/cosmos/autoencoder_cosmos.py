"""Cosmos-style causal video tokenizer (NVIDIA Cosmos, 2025): a temporally causal 3D-convolutional
encoder-decoder. The first frame is encoded alone, then each group of `temporal_compression` frames;
latents are continuous (for diffusion world models) or FSQ-discrete tokens (for autoregressive ones).
As in Cosmos, the encoder works in wavelet space: each frame first goes through an orthonormal Haar
transform (`wavelet_levels` levels, each halving H and W and multiplying the channels by 4), and the
decoder ends with its inverse; the learned layers do the remaining spatial and all temporal compression.

Video is `(B, T, C, H, W)` in [-1, 1] at the API, with T = 1 + k * temporal_compression; latents are
`(B, T', C', H', W')` with T' = 1 + k. Internally the convolutions run on `(B, C, T, H, W)`.
Causality is exact: encoding the first 1 + j * temporal_compression frames gives the first 1 + j latent
frames of the whole clip, and `StreamingState` encodes or decodes group by group with the same result.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, IdentityDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import Tensor, nn

from wm_hub.diffusers_utils import WorldModelMixin
from wm_hub.layers.attention import SelfAttention
from wm_hub.layers.quantizers import FiniteScalarQuantizer

StreamingState = dict  # per-module streaming buffers, keyed by module; start with {} and pass it along


class CausalConv3d(nn.Module):
    """`(B, C, T, H, W)` -> `(B, C', T', H', W')`: a Conv3d that sees only present and past frames. The
    clip's first frame is repeated `kernel_t - 1` times in front; with a `state`, a call continues the
    previous one exactly (the unconsumed frames are kept)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (3, 3, 3),
                 stride: tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.kernel_t, self.stride_t = kernel[0], stride[0]
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=(0, kernel[1] // 2, kernel[2] // 2))

    def forward(self, x: Tensor, state: StreamingState | None = None) -> Tensor:
        buffer = state.get(self) if state is not None else None
        if buffer is None:
            buffer = x[:, :, :1].expand(-1, -1, self.kernel_t - 1, -1, -1)
        x = torch.cat([buffer, x], dim=2)
        n = (x.shape[2] - self.kernel_t) // self.stride_t + 1 if x.shape[2] >= self.kernel_t else 0
        if state is not None:
            state[self] = x[:, :, n * self.stride_t:]
        if n == 0:  # streaming: not enough frames yet for one output frame
            window = x.new_zeros(*x.shape[:2], self.kernel_t, *x.shape[3:])
            return self.conv(window)[:, :, :0]
        return self.conv(x[:, :, : (n - 1) * self.stride_t + self.kernel_t])


class FactorizedCausalConv3d(nn.Module):
    """`(B, C, T, H, W)` -> `(B, C', T, H, W)`: a 1x3x3 spatial conv then a 3x1x1 causal temporal conv, the
    factorised 3D convolution of the Cosmos tokenizer (fewer weights and FLOPs than a full 3x3x3)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.spatial = CausalConv3d(cin, cout, (1, 3, 3))
        self.temporal = CausalConv3d(cout, cout, (3, 1, 1))

    def forward(self, x: Tensor, state: StreamingState | None = None) -> Tensor:
        return self.temporal(self.spatial(x, state), state)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over each frame separately, so normalisation never mixes time steps (causal)."""

    def forward(self, x: Tensor) -> Tensor:
        B, C, T, H, W = x.shape
        y = super().forward(x.transpose(1, 2).reshape(B * T, C, H, W))
        return y.view(B, T, C, H, W).transpose(1, 2)


def _norm(channels: int) -> FrameGroupNorm:
    return FrameGroupNorm(min(32, channels // 4) if channels >= 8 else 1, channels)


class ResBlock3d(nn.Module):
    """Norm, SiLU, factorised causal conv, twice, plus a (1x1x1 if the width changes) skip."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), FactorizedCausalConv3d(cin, cout)
        self.norm2, self.conv2 = _norm(cout), FactorizedCausalConv3d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, state: StreamingState | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)), state)
        h = self.conv2(F.silu(self.norm2(h)), state)
        return self.skip(x) + h


class FrameAttention(nn.Module):
    """Self-attention among the positions of each frame: `(B, C, T, H, W)` -> same."""

    def __init__(self, channels: int, num_heads: int = 4) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.attention = SelfAttention(channels, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        B, C, T, H, W = x.shape
        h = self.norm(x).permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
        h = self.attention(h)[0].view(B, T, H, W, C).permute(0, 4, 1, 2, 3)
        return x + h


_HAAR = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0],
                      [1.0, -1.0, -1.0, 1.0]]) / 2  # rows: LL, LH, HL, HH of a 2x2 block (orthonormal)


def haar_analysis(x: Tensor, levels: int) -> Tensor:
    """`(N, C, H, W)` -> `(N, C * 4**levels, H / 2**levels, W / 2**levels)`: an orthonormal 2D Haar wavelet
    packet transform (each level splits every channel into its four sub-bands)."""
    for _ in range(levels):
        N, C, H, W = x.shape
        blocks = F.pixel_unshuffle(x, 2).view(N, C, 4, H // 2, W // 2)
        x = torch.einsum("ij,ncjhw->ncihw", _HAAR.to(x), blocks).reshape(N, 4 * C, H // 2, W // 2)
    return x


def haar_synthesis(x: Tensor, levels: int) -> Tensor:
    """The inverse of `haar_analysis`: `(N, C * 4**levels, h, w)` -> `(N, C, h * 2**levels, w * 2**levels)`."""
    for _ in range(levels):
        N, C4, h, w = x.shape
        bands = x.view(N, C4 // 4, 4, h, w)
        x = F.pixel_shuffle(torch.einsum("ji,ncjhw->ncihw", _HAAR.to(x), bands).reshape(N, C4, h, w), 2)
    return x


def _per_frame(fn, x: Tensor, levels: int) -> Tensor:
    """Apply a frame-wise `(N, C, H, W)` transform to `(B, C, T, H, W)`."""
    B, _, T = x.shape[:3]
    y = fn(x.transpose(1, 2).flatten(0, 1), levels)
    return y.view(B, T, *y.shape[1:]).transpose(1, 2)


class Downsample(nn.Module):
    """If `spatial`, halve H and W (strided conv); if `temporal`, T (causal strided conv: 1 + 2k -> 1 + k)."""

    def __init__(self, channels: int, spatial: bool, temporal: bool) -> None:
        super().__init__()
        self.spatial = CausalConv3d(channels, channels, (1, 3, 3), (1, 2, 2)) if spatial else None
        self.temporal = CausalConv3d(channels, channels, (3, 1, 1), (2, 1, 1)) if temporal else None

    def forward(self, x: Tensor, state: StreamingState | None = None) -> Tensor:
        if self.spatial is not None:
            x = self.spatial(x, state)
        return self.temporal(x, state) if self.temporal is not None else x


class Upsample(nn.Module):
    """If `spatial`, double H and W (nearest); if `temporal`, T (1 + k -> 1 + 2k: the clip's first frame
    stays one frame, every later one becomes two); then a factorised causal conv."""

    def __init__(self, channels: int, spatial: bool, temporal: bool) -> None:
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.conv = FactorizedCausalConv3d(channels, channels)

    def forward(self, x: Tensor, state: StreamingState | None = None) -> Tensor:
        B, C, T, H, W = x.shape
        if self.spatial:
            x = F.interpolate(x.transpose(1, 2).reshape(B * T, C, H, W), scale_factor=2, mode="nearest")
            x = x.view(B, T, C, 2 * H, 2 * W).transpose(1, 2)
        if self.temporal and T:
            first = state is None or not state.get((self, "started"), False)
            repeated = x.repeat_interleave(2, dim=2)
            x = torch.cat([x[:, :, :1], repeated[:, :, 2:]], dim=2) if first else repeated
            if state is not None:
                state[(self, "started")] = True
        return self.conv(x, state)


class CausalVideoTokenizer(WorldModelMixin, ConfigMixin):
    """Causal video tokenizer with a continuous or an FSQ-discrete bottleneck (see the module docstring)."""

    config_name = "config.json"
    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        # Architecture
        in_channels: int = 3,
        base_channels: int = 64,
        channel_multipliers: tuple[int, ...] = (1, 2, 2, 2),
        temporal_compression: int = 4,
        spatial_compression: int = 8,
        wavelet_levels: int = 2,
        num_heads: int = 4,
        # Bottleneck: "continuous" (latent_channels) or "discrete" (FSQ, one channel per level)
        quantizer: str = "continuous",
        latent_channels: int = 16,
        fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5),
        # Latent normalisation (continuous): z_normalised = (z - mean) / std, per channel; set after training
        latents_mean: tuple[float, ...] | None = None,
        latents_std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        spatial_downs, temporal_downs = int(math.log2(spatial_compression)), int(math.log2(temporal_compression))
        if 2**spatial_downs != spatial_compression or 2**temporal_downs != temporal_compression:
            raise ValueError(
                f"compression factors must be powers of 2, got {temporal_compression}x{spatial_compression}"
            )
        if not 0 <= wavelet_levels <= spatial_downs:
            raise ValueError(f"wavelet_levels must be in [0, {spatial_downs}] for spatial compression "
                             f"{spatial_compression}, got {wavelet_levels}")
        conv_downs, num_levels = spatial_downs - wavelet_levels, len(channel_multipliers) - 1
        if num_levels < max(conv_downs, temporal_downs):
            raise ValueError(
                f"expected at least {max(conv_downs, temporal_downs) + 1} channel_multipliers for "
                f"{temporal_compression}x{spatial_compression} compression with {wavelet_levels} wavelet levels "
                f"(one per learned down-sampling level, plus one), got {tuple(channel_multipliers)}"
            )
        if quantizer not in ("continuous", "discrete"):
            raise ValueError(f"quantizer must be 'continuous' or 'discrete', got {quantizer!r}")
        widths = [base_channels * m for m in channel_multipliers]
        code_channels = latent_channels if quantizer == "continuous" else len(fsq_levels)
        wavelet_channels = in_channels * 4**wavelet_levels
        spatial_at = set(range(conv_downs))  # the finest levels halve H and W
        temporal_at = set(range(num_levels - temporal_downs, num_levels))  # the coarsest levels halve T

        # Encoder
        self.encoder_in = CausalConv3d(wavelet_channels, widths[0])
        self.encoder_blocks = nn.ModuleList(ResBlock3d(widths[i], widths[i + 1]) for i in range(num_levels))
        self.encoder_downs = nn.ModuleList(Downsample(widths[i + 1], i in spatial_at, i in temporal_at)
                                           for i in range(num_levels))
        self.encoder_mid = nn.ModuleList([ResBlock3d(widths[-1], widths[-1]), ResBlock3d(widths[-1], widths[-1])])
        self.encoder_attention = FrameAttention(widths[-1], num_heads)
        self.encoder_norm = _norm(widths[-1])
        self.encoder_out = CausalConv3d(widths[-1], code_channels)
        self.fsq = FiniteScalarQuantizer(fsq_levels) if quantizer == "discrete" else None

        # Decoder
        self.decoder_in = CausalConv3d(code_channels, widths[-1])
        self.decoder_mid = nn.ModuleList([ResBlock3d(widths[-1], widths[-1]), ResBlock3d(widths[-1], widths[-1])])
        self.decoder_attention = FrameAttention(widths[-1], num_heads)
        levels = list(reversed(range(num_levels)))
        self.decoder_ups = nn.ModuleList(Upsample(widths[i + 1], i in spatial_at, i in temporal_at) for i in levels)
        self.decoder_blocks = nn.ModuleList(ResBlock3d(widths[i + 1], widths[i]) for i in levels)
        self.decoder_norm = _norm(widths[0])
        self.decoder_out = CausalConv3d(widths[0], wavelet_channels)

    # -- shapes -----------------------------------------------------------------------------------
    def check_video(self, video: Tensor) -> int:
        """Raise for a video whose size does not fit; return how many frames to pad to fit in time."""
        c = self.config
        if video.dim() != 5 or video.shape[2] != c.in_channels:
            raise ValueError(f"expected video (B, T, {c.in_channels}, H, W), got shape {tuple(video.shape)}")
        H, W = video.shape[-2:]
        s = c.spatial_compression
        if H % s or W % s:
            raise ValueError(f"frame size {H}x{W} does not fit spatial compression {s}: use H and W multiples of {s}, "
                             f"e.g. {max(s, H // s * s)}x{max(s, W // s * s)}")
        return (-(video.shape[1] - 1)) % c.temporal_compression

    def latent_frames(self, num_frames: int) -> int:
        return 1 + math.ceil((num_frames - 1) / self.config.temporal_compression)

    # -- encode / decode ---------------------------------------------------------------------------
    def _encode_raw(self, x: Tensor, state: StreamingState | None) -> Tensor:
        h = self.encoder_in(_per_frame(haar_analysis, x, self.config.wavelet_levels), state)
        for block, down in zip(self.encoder_blocks, self.encoder_downs, strict=True):
            h = down(block(h, state), state)
        h = self.encoder_mid[0](h, state)
        h = self.encoder_attention(h)
        h = self.encoder_mid[1](h, state)
        return self.encoder_out(F.silu(self.encoder_norm(h)), state)  # (B, C', T', H', W')

    def _decode_raw(self, z: Tensor, state: StreamingState | None) -> Tensor:
        h = self.decoder_in(z, state)
        h = self.decoder_mid[0](h, state)
        h = self.decoder_attention(h)
        h = self.decoder_mid[1](h, state)
        for up, block in zip(self.decoder_ups, self.decoder_blocks, strict=True):
            h = block(up(h, state), state)
        h = self.decoder_out(F.silu(self.decoder_norm(h)), state)
        return _per_frame(haar_synthesis, h, self.config.wavelet_levels)

    def _stats(self, z: Tensor) -> tuple[Tensor, Tensor] | None:
        c = self.config
        if c.quantizer != "continuous" or c.latents_mean is None or c.latents_std is None:
            return None
        shape = (1, 1, -1, 1, 1)
        return (torch.tensor(c.latents_mean, dtype=z.dtype, device=z.device).view(shape),
                torch.tensor(c.latents_std, dtype=z.dtype, device=z.device).view(shape))

    def _encode(self, video: Tensor, state: StreamingState | None) -> tuple[Tensor, Tensor | None]:
        """Video `(B, T, C, H, W)` -> (latents `(B, T', C', H', W')`, token ids `(B, T', H', W')` or None)."""
        pad = self.check_video(video)
        if pad and state is None:
            warnings.warn(f"{video.shape[1]} frames do not fit temporal compression "
                          f"{self.config.temporal_compression}: padded to {video.shape[1] + pad}", stacklevel=2)
            video = torch.cat([video, video[:, -1:].expand(-1, pad, -1, -1, -1)], dim=1)
        z = self._encode_raw(video.transpose(1, 2), state).transpose(1, 2)  # (B, T', C', H', W')
        if self.fsq is not None:
            quantized, indices = self.fsq(z.movedim(2, -1))
            return quantized.movedim(-1, 2), indices
        stats = self._stats(z)
        return ((z - stats[0]) / stats[1] if stats else z), None

    def encode(self, video: Tensor, state: StreamingState | None = None, return_dict: bool = True
               ) -> AutoencoderKLOutput | tuple:
        """Video `(B, T, C, H, W)` -> `AutoencoderKLOutput` whose `latent_dist` (deterministic: `.mode()` and
        `.sample()` agree) holds latents `(B, T', C', H', W')`: normalised continuous latents, or the
        FSQ-quantized values of the discrete variant (its token ids: `tokenize`).

        A frame count that is not 1 + k * temporal_compression is padded by repeating the last frame
        (with a warning); `decode(..., num_frames=T)` crops it back. With a `state` (a dict, empty at
        first), call it with the first frame, then with groups of temporal_compression frames."""
        dist = IdentityDistribution(self._encode(video, state)[0])
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, latents: Tensor, num_frames: int | None = None, state: StreamingState | None = None,
               return_dict: bool = True) -> DecoderOutput | tuple:
        """Latents `(B, T', C', H', W')` -> video `(B, T, C, H, W)`, cropped to `num_frames` if given."""
        stats = self._stats(latents)
        z = latents * stats[1] + stats[0] if stats else latents
        video = self._decode_raw(z.transpose(1, 2), state).transpose(1, 2)
        if num_frames is not None:
            video = video[:, :num_frames]
        return DecoderOutput(sample=video) if return_dict else (video,)

    def tokenize(self, video: Tensor) -> Tensor:
        """Discrete variant: video `(B, T, C, H, W)` -> token ids `(B, T', H', W')`."""
        if self.fsq is None:
            raise ValueError("tokenize() needs the discrete (FSQ) variant; this tokenizer is continuous")
        return self._encode(video, None)[1]

    def detokenize(self, indices: Tensor, num_frames: int | None = None) -> Tensor:
        """Discrete variant: token ids `(B, T', H', W')` -> video `(B, T, C, H, W)`; ids outside the codebook
        are a ValueError."""
        if self.fsq is None:
            raise ValueError("detokenize() needs the discrete (FSQ) variant; this tokenizer is continuous")
        latents = self.fsq.indices_to_codes(indices).movedim(-1, 2)
        return self.decode(latents, num_frames=num_frames).sample

    def forward(self, video: Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Reconstruct a video `(B, T, C, H, W)` (padded in time if needed, cropped back)."""
        reconstruction = self.decode(self._encode(video, None)[0], num_frames=video.shape[1]).sample
        return DecoderOutput(sample=reconstruction) if return_dict else (reconstruction,)
