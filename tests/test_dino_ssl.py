"""Self-supervised pre-training of DINO-WM's encoder: crops, losses, gradients, EMA teacher."""

from __future__ import annotations

import pytest
import torch
from transformers import Dinov2Config, Dinov2Model

from wm_hub.models.dino_wm.ssl_dino_wm import (
    DinoSelfSupervision,
    DinoSSLConfig,
    ProjectionHead,
    random_crops,
    slowness_loss,
)


def tiny(**ssl) -> DinoSelfSupervision:
    torch.manual_seed(0)
    encoder = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                                       patch_size=8))
    return DinoSelfSupervision(encoder, DinoSSLConfig(num_prototypes=64, head_hidden=32, head_bottleneck=16, **ssl))


def test_random_crops_shapes_range_and_seed():
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    crops = random_crops(images, 4, 16, (0.1, 0.4), torch.Generator().manual_seed(0))
    assert crops.shape == (4, 3, 3, 16, 16) and crops.min() >= -1 and crops.max() <= 1
    assert torch.equal(crops, random_crops(images, 4, 16, (0.1, 0.4), torch.Generator().manual_seed(0)))
    flat = torch.full((1, 3, 32, 32), 0.3)  # a flat image stays flat, up to the brightness jitter
    crop = random_crops(flat, 1, 32, (0.4, 1.0), torch.Generator().manual_seed(1))[0, 0]
    assert torch.allclose(crop, crop.mean().expand_as(crop), atol=1e-5) and abs(crop.mean() - 0.3) <= 0.2 + 1e-6


def test_losses_train_the_student_and_the_teacher_follows_by_ema():
    ssl = tiny()
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    out = ssl(images, torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "dino_loss", "ibot_loss", "teacher_entropy"}
    assert all(torch.isfinite(v) and v > 0 for v in out.values())
    out["loss"].backward()
    for module in (ssl.student, ssl.student_dino, ssl.student_ibot):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert all(p.grad is None for p in ssl.teacher.parameters())
    teacher = [p.clone() for p in ssl.teacher.parameters()]
    with torch.no_grad():
        for p in ssl.student.parameters():
            p.add_(0.1)
    ssl.update_teacher(1.0)  # momentum 1: the teacher stays
    assert all(torch.equal(a, b) for a, b in zip(teacher, ssl.teacher.parameters(), strict=True))
    ssl.update_teacher(0.0)  # momentum 0: the teacher becomes the student
    assert all(torch.equal(a, b) for a, b in zip(ssl.student.parameters(), ssl.teacher.parameters(), strict=True))
    assert ssl.dino_center.abs().sum() > 0  # the centre follows the teacher's outputs


def test_prototypes_keep_unit_norm_so_logits_are_cosines():
    """A learned prototype norm can shrink the logits to a uniform output (DINO loss stuck at ln K)."""
    torch.manual_seed(0)
    head = ProjectionHead(8, 16, 4, 32)
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    for _ in range(3):  # pushing every logit towards 0 cannot change the prototypes' norm
        head(torch.randn(64, 8)).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.testing.assert_close(head.prototypes.weight.norm(dim=1), torch.ones(32))
    logits = head(torch.randn(64, 8))
    assert logits.abs().max() <= 1 + 1e-5 and logits.abs().max() > 0.5


def test_slowness_terms():
    """Invariance is 0 for features constant in time; the variance hinge counts features that tell sequences
    (episodes) apart but stay fixed within each as collapsed; features that vary within the sequences,
    decorrelated, pay neither variance nor much covariance."""
    torch.manual_seed(0)
    spread = torch.randn(64, 8, 4, 8)  # (B, L, N, D): every patch's every dimension varies along each sequence
    out = slowness_loss(spread)
    assert out["variance"] < 0.15 and out["covariance"] < 0.1 and out["invariance"] == pytest.approx(2, rel=0.05)
    per_episode = torch.randn(64, 1, 4, 8).expand(64, 8, 4, 8) * 3  # a layout: fixed within each sequence
    still = slowness_loss(per_episode)
    assert still["invariance"] == 0 and still["variance"] > 0.95
    correlated = torch.randn(64, 8, 4, 1).expand(64, 8, 4, 8)  # one factor copied into every dimension
    assert slowness_loss(correlated)["covariance"] > 3
    assert out["slowness_loss"] == pytest.approx(25 * out["invariance"] + 25 * out["variance"] + out["covariance"])
    with pytest.raises(ValueError, match="sequences of L >= 2 frames"):
        slowness_loss(spread[:, :1])


def test_slowness_objective_trains_the_student_on_sequences():
    ssl = tiny(slowness_weight=1.0)
    sequences = torch.rand(4, 3, 3, 32, 32) * 2 - 1  # (B, L, C, H, W)
    out = ssl(sequences[:, 0], torch.Generator().manual_seed(0), sequences=sequences)
    assert {"slowness_loss", "invariance", "variance", "covariance"} <= set(out) and out["invariance"] > 0
    out["loss"].backward()
    assert ssl.student.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs `sequences`"):
        ssl(sequences[:, 0])
