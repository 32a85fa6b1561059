"""The Cosmos-style DiT world model: shapes, adaLN-Zero start, conditioning, EDM training step, round trip."""

from __future__ import annotations

import pytest
import torch
from diffusers import EDMEulerScheduler

import wm_hub
from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel

TINY = {"in_channels": 4, "patch_size": (1, 2, 2), "hidden_size": 24, "num_layers": 2, "num_heads": 2,
        "text_dim": 8}


def inputs(B=2, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(B, T, 4, 4, 4, generator=g)
    text = torch.randn(B, 5, 8, generator=g)
    text_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])[:B]
    return latents, text, text_mask


def test_shapes_and_zero_start():
    model = WorldTransformer3DModel(**TINY).eval()
    latents, text, mask = inputs()
    out = model(latents, torch.tensor([0.1, -0.3]), text, mask).sample
    assert out.shape == latents.shape
    assert out.abs().max() == 0  # adaLN-Zero and a zero output layer: F starts at 0 (denoised = c_skip * x)


def trained(steps=30, seed=0) -> tuple[WorldTransformer3DModel, list[float]]:
    """A few EDM steps on one batch; returns the model and its losses."""
    torch.manual_seed(seed)
    model = WorldTransformer3DModel(**TINY)
    scheduler = EDMEulerScheduler(sigma_data=1.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    clean, text, mask = inputs()
    sigma = torch.tensor([0.5, 2.0]).view(2, 1, 1, 1, 1)
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))  # one fixed batch
    losses = []
    for _ in range(steps):
        out = model(scheduler.precondition_inputs(noisy, sigma), scheduler.precondition_noise(sigma).flatten(),
                    text, mask).sample
        denoised = scheduler.precondition_outputs(noisy, out, sigma)
        weight = (sigma**2 + 1) / sigma**2  # EDM loss weight with sigma_data = 1
        loss = (weight * (denoised - clean) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def test_edm_training_lowers_the_loss_and_conditioning_matters():
    model, losses = trained()
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    latents, text, mask = inputs(seed=1)
    t = torch.tensor([0.2, 0.2])
    with torch.no_grad():
        base = model(latents, t, text, mask).sample
        assert (model(latents, t, torch.randn_like(text), mask).sample - base).abs().max() > 1e-4  # reads the text
        masked = mask.clone()
        masked[0, 1] = 0  # hiding a text token changes that sample only
        changed = model(latents, t, text, masked).sample - base
        assert changed[0].abs().max() > 1e-5 and changed[1].abs().max() == 0
        cond = torch.tensor([[1, 0, 0], [0, 0, 0]])
        changed = model(latents, t, text, mask, condition_mask=cond).sample - base
        assert changed[0].abs().max() > 1e-5 and changed[1].abs().max() == 0  # the mask is an input channel
        per_frame = model(latents, torch.tensor([[0.2, 0.2, -2.0], [0.2, 0.2, 0.2]]), text, mask).sample - base
        assert per_frame[0].abs().max() > 1e-5 and per_frame[1].abs().max() == 0  # a noise level per frame
        all_padding = model(latents, t, text, torch.zeros_like(mask)).sample  # attends to all, no NaN
        assert torch.isfinite(all_padding).all()


def test_save_load_round_trip(tmp_path):
    model, _ = trained(steps=3)
    model.eval().save_pretrained(tmp_path / "dit")
    loaded = wm_hub.load(tmp_path / "dit")
    assert isinstance(loaded, WorldTransformer3DModel)
    latents, text, mask = inputs()
    t = torch.tensor([0.0, 1.0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(latents, t, text, mask).sample, model(latents, t, text, mask).sample)


def test_bad_input():
    model = WorldTransformer3DModel(**TINY)
    latents, text, mask = inputs()
    with pytest.raises(ValueError, match=r"expected latents \(B, T, 4, H, W\), got shape \(2, 3, 5, 4, 4\)"):
        model(torch.zeros(2, 3, 5, 4, 4), torch.zeros(2), text, mask)
    with pytest.raises(ValueError, match=r"\(3, 4, 5\) is not divisible by patch_size \(1, 2, 2\)"):
        model(torch.zeros(2, 3, 4, 4, 5), torch.zeros(2), text, mask)
    with pytest.raises(ValueError, match=r"expected timestep \(B,\) or \(B, T\) = \(2, 3\)"):
        model(latents, torch.zeros(2, 4), text, mask)
    with pytest.raises(ValueError, match=r"expected condition_mask \(B, T\) = \(2, 3\)"):
        model(latents, torch.zeros(2), text, mask, condition_mask=torch.zeros(2, 4))
