"""Self-supervised pre-training of DINO-WM's encoder here, where `facebook/dinov2-small` cannot be
downloaded: DINOv2's two objectives on environment frames, with a student and an EMA teacher.

- DINO (image level): the teacher's centred, sharpened distribution over `num_prototypes` for each global
  crop is the target of the student's distribution for every other crop (global and local).
- iBOT (patch level): the student sees the global crops with a share of patches masked (Dinov2's mask
  token); for each masked patch it predicts the teacher's distribution for that patch of the unmasked
  crop. This is what makes the patch features, the ones DINO-WM plans on, carry local content.

Crops are random resized crops (global: `global_scale` of the area, at the model's image size; local:
`local_scale`, at half of it) with horizontal flips and brightness/contrast jitter, written in torch.

Optionally (`slowness_weight` > 0), a third objective on short sequences of frames from one episode:
slowness (Wiskott & Sejnowski 2002) in VICReg's form (Bardes et al. 2022), on the whole frames' patch
features, the ones DINO-WM's planning cost compares. Invariance pulls the features of consecutive frames
together; variance and covariance terms keep them from collapsing. Features that change slowly along random
walks vary smoothly with the state (slow feature analysis learns place-like codes from a moving agent's
views, Franzius et al. 2007), which a planning cost needs and DINO's crop invariance and iBOT's local targets
do not ask for. The variance is taken within each sequence, not across the batch: what stays fixed through an
episode (the layout) is perfectly slow and would otherwise meet the variance term alone. Measured on Wall
(`training/notes/dino-wm-wall.md`): in short runs it has not yet made the feature distance rank positions by
their distance to the goal.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import Dinov2Model

__all__ = ["DinoSSLConfig", "DinoSelfSupervision", "random_crops", "slowness_loss"]


@dataclass
class DinoSSLConfig:
    """Settings of the objective (DINOv2's values where they fit a small model and a small dataset)."""

    num_prototypes: int = 1024
    head_hidden: int = 256
    head_bottleneck: int = 64
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    center_momentum: float = 0.9
    mask_ratio: tuple[float, float] = (0.1, 0.5)  # share of masked patches, drawn per image
    ibot_weight: float = 1.0
    global_crops: int = 2
    local_crops: int = 4
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.1, 0.4)
    # slowness on sequences of `slowness_frames` frames `slowness_gap` env steps apart (weight 0: DINOv2's
    # two objectives only); VICReg's weights and target std
    slowness_weight: float = 0.0
    slowness_frames: int = 4
    slowness_gap: int = 2
    slowness_terms: tuple[float, float, float] = (25.0, 25.0, 1.0)  # invariance, variance, covariance
    slowness_std: float = 1.0


class ProjectionHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> unit-norm prototypes: `(..., D)` -> logits `(..., K)`, the cosine
    similarities to the prototypes, in [-1, 1].

    The prototypes' norm is fixed at 1 (DINO's `norm_last_layer`): the temperatures alone set how sharp
    the distributions are. A learned norm lets the head shrink its logits until every output is uniform,
    a fixed point where the DINO loss stays at ln K and the CLS token learns nothing."""

    def __init__(self, dim: int, hidden: int, bottleneck: int, num_prototypes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.prototypes = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, num_prototypes, bias=False))
        norm = self.prototypes.parametrizations.weight.original0  # (K, 1)
        norm.data.fill_(1.0)
        norm.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.prototypes(F.normalize(self.mlp(x), dim=-1))


def random_crops(images: Tensor, count: int, size: int, scale: tuple[float, float],
                 generator: torch.Generator | None = None) -> Tensor:
    """`count` augmented crops of each image `(B, C, H, W)` in [-1, 1] -> `(count, B, C, size, size)`:
    a random resized crop (area share in `scale`, aspect ratio in [3/4, 4/3]), a horizontal flip with
    probability 1/2, and brightness / contrast jitter of +-0.2."""
    B, _, H, W = images.shape
    crops = []
    for _ in range(count):
        rand = torch.rand(B, 6, generator=generator)
        area = scale[0] + (scale[1] - scale[0]) * rand[:, 0]
        ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * rand[:, 1])
        w = (area * ratio).sqrt().clamp(max=1.0)  # crop size as a share of the image side
        h = (area / ratio).sqrt().clamp(max=1.0)
        cx = (1 - w) * (2 * rand[:, 2] - 1)  # centre in [-1, 1] coordinates, crop inside the image
        cy = (1 - h) * (2 * rand[:, 3] - 1)
        flip = torch.where(rand[:, 4] < 0.5, -1.0, 1.0)
        theta = torch.zeros(B, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        grid = F.affine_grid(theta.to(images), (B, images.shape[1], size, size), align_corners=False)
        crop = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        jitter = (torch.rand(B, 2, generator=generator).to(images) - 0.5) * 0.4
        mean = crop.mean(dim=(1, 2, 3), keepdim=True)
        crop = (crop - mean) * (1 + jitter[:, 0, None, None, None]) + mean + jitter[:, 1, None, None, None]
        crops.append(crop.clamp(-1, 1))
    return torch.stack(crops)


def slowness_loss(features: Tensor, terms: tuple[float, float, float] = (25.0, 25.0, 1.0),
                  target_std: float = 1.0) -> dict[str, Tensor]:
    """VICReg along time for patch features `(B, L, N, D)` of B sequences of L frames: the mean squared
    difference of consecutive frames' features (invariance); a hinge keeping the std over each sequence of
    every patch's every dimension above `target_std` (variance: features must follow what changes within an
    episode, not what tells episodes apart); and the squared off-diagonal covariances of the dimensions after
    removing each sequence's and patch's mean (covariance). Returns {"slowness_loss": the weighted sum, and the
    three terms}."""
    if features.dim() != 4 or features.shape[1] < 2:
        raise ValueError(f"expected patch features (B, L, N, D) of sequences of L >= 2 frames, got "
                         f"{tuple(features.shape)}")
    invariance = F.mse_loss(features[:, 1:], features[:, :-1])
    z = features - features.mean(1, keepdim=True)
    variance = F.relu(target_std - (z.var(1) + 1e-4).sqrt()).mean()
    flat = z.flatten(0, 2)  # (B*L*N, D)
    cov = flat.T @ flat / max(1, flat.shape[0] - features.shape[0] * features.shape[2])  # unbiased per group
    covariance = (cov - torch.diag(torch.diagonal(cov))).pow(2).sum() / cov.shape[0]
    w_inv, w_var, w_cov = terms
    return {"slowness_loss": w_inv * invariance + w_var * variance + w_cov * covariance,
            "invariance": invariance.detach(), "variance": variance.detach(), "covariance": covariance.detach()}


class DinoSelfSupervision(nn.Module):
    """Student `Dinov2Model` with DINO and iBOT heads, and their EMA teacher. `forward(images)` returns
    the losses; call `update_teacher(momentum)` after each optimiser step. `student` is the encoder to
    keep (its weights go into `DinoWMModel.encoder`)."""

    def __init__(self, student: Dinov2Model, config: DinoSSLConfig | None = None) -> None:
        super().__init__()
        self.config = config or DinoSSLConfig()
        c, dim = self.config, student.config.hidden_size
        self.student = student
        self.student_dino = ProjectionHead(dim, c.head_hidden, c.head_bottleneck, c.num_prototypes)
        self.student_ibot = ProjectionHead(dim, c.head_hidden, c.head_bottleneck, c.num_prototypes)
        self.teacher = copy.deepcopy(student).requires_grad_(False)
        self.teacher_dino = copy.deepcopy(self.student_dino).requires_grad_(False)
        self.teacher_ibot = copy.deepcopy(self.student_ibot).requires_grad_(False)
        self.register_buffer("dino_center", torch.zeros(c.num_prototypes))
        self.register_buffer("ibot_center", torch.zeros(c.num_prototypes))

    def _student_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.student, self.teacher), (self.student_dino, self.teacher_dino),
                (self.student_ibot, self.teacher_ibot)]

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student."""
        for student, teacher in self._student_pairs():
            for s, t in zip(student.parameters(), teacher.parameters(), strict=True):
                t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)

    def _targets(self, logits: Tensor, center: Tensor) -> Tensor:
        return F.softmax((logits - center) / self.config.teacher_temperature, dim=-1)

    def _log_probs(self, logits: Tensor) -> Tensor:
        return F.log_softmax(logits / self.config.student_temperature, dim=-1)

    def forward(self, images: Tensor, generator: torch.Generator | None = None, sequences: Tensor | None = None
                ) -> dict[str, Tensor]:
        """Frames `(B, C, H, W)` in [-1, 1], fed to the encoder as they are (so a DINO-WM over it normalises
        [0, 1] pixels by mean 0.5, std 0.5) -> {"loss", "dino_loss", "ibot_loss", "teacher_entropy"}; with
        `slowness_weight` > 0, `sequences` `(B, L, C, H, W)` are frames of one episode each, `slowness_gap`
        steps apart, and the slowness terms are added."""
        c = self.config
        if c.slowness_weight > 0 and (sequences is None or sequences.dim() != 5 or sequences.shape[1] < 2):
            raise ValueError(f"slowness_weight > 0 needs `sequences` (B, L >= 2, C, H, W), got "
                             f"{None if sequences is None else tuple(sequences.shape)}")
        size = self.student.config.image_size
        patch = self.student.config.patch_size
        global_views = random_crops(images, c.global_crops, size, c.global_scale, generator)  # (G, B, C, S, S)
        local_views = random_crops(images, c.local_crops, size // 2 // patch * patch, c.local_scale, generator)
        G, B = global_views.shape[:2]
        flat_global = global_views.flatten(0, 1)
        N = (size // patch) ** 2

        # 1. Teacher: targets from the unmasked global crops.
        with torch.no_grad():
            self.teacher.eval()
            tokens = self.teacher(pixel_values=flat_global).last_hidden_state  # (G*B, 1+N, D)
            t_dino, t_ibot = self.teacher_dino(tokens[:, 0]), self.teacher_ibot(tokens[:, 1:])
            dino_targets = self._targets(t_dino, self.dino_center).view(G, B, -1)
            ibot_targets = self._targets(t_ibot, self.ibot_center)  # (G*B, N, K)

        # 2. Student: global crops with masked patches, local crops whole.
        share = c.mask_ratio[0] + (c.mask_ratio[1] - c.mask_ratio[0]) * torch.rand(G * B, 1, generator=generator)
        mask = (torch.rand(G * B, N, generator=generator) < share).to(images.device)
        s_global = self.student(pixel_values=flat_global, bool_masked_pos=mask).last_hidden_state
        s_local = self.student(pixel_values=local_views.flatten(0, 1)).last_hidden_state[:, 0]
        student_cls = torch.cat([s_global[:, 0], s_local]).view(G + c.local_crops, B, -1)
        student_log = self._log_probs(self.student_dino(student_cls))  # (V, B, K)

        # 3. DINO: every student view against every other view's teacher target.
        terms = [-(dino_targets[g] * student_log[v]).sum(-1).mean()
                 for g in range(G) for v in range(student_log.shape[0]) if v != g]
        dino_loss = torch.stack(terms).mean()

        # 4. iBOT: masked patches against the teacher's patch targets.
        patch_log = self._log_probs(self.student_ibot(s_global[:, 1:]))  # (G*B, N, K)
        per_patch = -(ibot_targets * patch_log).sum(-1)  # (G*B, N)
        ibot_loss = (per_patch * mask).sum() / mask.sum().clamp(min=1)

        # 5. Centres follow the teacher's mean output (they keep the targets from collapsing).
        with torch.no_grad():
            m = c.center_momentum
            self.dino_center.mul_(m).add_(t_dino.mean(0), alpha=1 - m)
            self.ibot_center.mul_(m).add_(t_ibot.mean((0, 1)), alpha=1 - m)
            mean_target = dino_targets.flatten(0, 1).mean(0)
            entropy = -(mean_target * mean_target.clamp(min=1e-12).log()).sum()
        out = {"loss": dino_loss + c.ibot_weight * ibot_loss, "dino_loss": dino_loss.detach(),
               "ibot_loss": ibot_loss.detach(), "teacher_entropy": entropy}

        # 6. Slowness: the whole frames' patch features, as DINO-WM encodes them, close in time -> close.
        if c.slowness_weight > 0:
            B, L = sequences.shape[:2]
            features = self.student(pixel_values=sequences.flatten(0, 1)).last_hidden_state[:, 1:]
            slow = slowness_loss(features.unflatten(0, (B, L)), c.slowness_terms, c.slowness_std)
            out["loss"] = out["loss"] + c.slowness_weight * slow["slowness_loss"]
            out.update({k: v.detach() for k, v in slow.items()})
        return out
