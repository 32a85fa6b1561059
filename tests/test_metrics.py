from __future__ import annotations

import math

import pytest
import torch

from wm_hub.metrics import delta_t_psnr, psnr, rank_correlation, ssim


def test_psnr_known_values():
    x = torch.zeros(2, 3, 8, 8)
    y = x + 0.1  # MSE 0.01 on the [-1, 1] range (peak-to-peak 2)
    torch.testing.assert_close(psnr(y, x), torch.full((2,), 10 * math.log10(4 / 0.01)))
    assert psnr(y, x, data_range=1.0)[0].item() == pytest.approx(20.0)
    assert torch.isinf(psnr(x, x)).all()


def test_psnr_per_frame_shape():
    x = torch.rand(2, 5, 3, 8, 8) * 2 - 1
    assert psnr(x * 0.9, x).shape == (2, 5)


def test_ssim_known_values():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(ssim(x, x), torch.ones(4))
    # Two constant images: only the luminance term remains, (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1),
    # computed by torchmetrics on values shifted to [0, data_range].
    a, b = torch.full((1, 1, 32, 32), -0.5), torch.full((1, 1, 32, 32), 0.5)
    c1 = (0.01 * 2.0) ** 2
    mu_a, mu_b = -0.5, 0.5
    expected = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    assert ssim(a, b).item() == pytest.approx(expected, abs=1e-4)


def test_metric_shape_errors():
    with pytest.raises(ValueError, match=r"same shape, got \(1, 3, 8, 8\) and \(1, 3, 8, 9\)"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="expected images"):
        ssim(torch.zeros(8, 8), torch.zeros(8, 8))


def test_delta_t_psnr():
    target = torch.zeros(2, 6, 3, 8, 8)
    good, bad = target + 0.01, target + 0.1
    torch.testing.assert_close(delta_t_psnr(target, good, bad, t=4), torch.full((2,), 20.0))
    with pytest.raises(ValueError, match="outside the clip's 6 frames"):
        delta_t_psnr(target, good, bad, t=6)


def test_rank_correlation():
    x = torch.arange(10.0)
    assert rank_correlation(x, x.exp()) == pytest.approx(1.0)  # monotone: ranks agree
    assert rank_correlation(x, -x) == pytest.approx(-1.0)
    assert abs(rank_correlation(torch.randn(2000, generator=torch.Generator().manual_seed(0)), x.repeat(200))) < 0.1
    with pytest.raises(ValueError, match="1-D tensors of one length"):
        rank_correlation(x, x[:5])
