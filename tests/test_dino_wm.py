"""DINO-WM model: frozen encoder, frame-causal predictor, rollouts, decoder, save/load, bad input."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from wm_hub.models.dino_wm.configuration_dino_wm import DinoWMConfig
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel

ENCODER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}


def tiny(**overrides) -> DinoWMModel:
    torch.manual_seed(0)
    config = DinoWMConfig(**{"encoder_config": ENCODER, "predictor_layers": 2, "predictor_heads": 2,
                             "decoder_channels": 8, **overrides})
    return DinoWMModel(config).eval()


def clip(T: int = 4, B: int = 2):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(B, T, 3, 32, 32, generator=g) * 2 - 1, torch.randn(B, T, 5, 2, generator=g),
            torch.randn(B, T, 2, generator=g))


def test_predictor_is_frame_causal():
    model = tiny()
    frames, actions, _ = clip()
    features = model.encode(frames)[:, :3]
    flat = actions.flatten(2)[:, :3]
    base, _ = model.predict(features, flat)
    changed = features.clone()
    changed[:, 2] += 1.0
    other, _ = model.predict(changed, flat)
    assert torch.allclose(base[:, :2], other[:, :2], atol=1e-5) and not torch.allclose(base[:, 2], other[:, 2])
    moved = flat.clone()
    moved[:, 1] += 1.0  # the action taken at frame 1 changes the predictions from frame 1 on
    again, _ = model.predict(features, moved)
    assert torch.allclose(base[:, 0], again[:, 0], atol=1e-5) and not torch.allclose(base[:, 1], again[:, 1])


def test_encoder_is_frozen_and_the_rest_learns():
    model = tiny(proprio_dim=2).train()
    assert not model.encoder.training and not any(p.requires_grad for p in model.encoder.parameters())
    frames, actions, proprio = clip()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    encoder_before = [p.clone() for p in model.encoder.parameters()]
    losses = []
    for _ in range(30):
        out = model(frames, actions, proprio)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert out.predicted.shape == (2, 3, 16, 32) and out.reconstruction.shape == frames[:, :1].shape
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters(), strict=True))
    assert out.proprio_loss is not None and out.decoder_loss is not None


def test_rollout_loss_scores_the_open_loop_rollout():
    """With `rollout_loss_weight`, the loss adds (weight x) the error of an open-loop rollout from frame 1:
    the prediction of frame 2 is the teacher-forced one, later frames are predicted from predictions."""
    frames, actions, proprio = clip(T=4)
    plain, rolled = tiny(proprio_dim=2), tiny(proprio_dim=2, rollout_loss_weight=0.5, proprio_loss_weight=3.0)
    a, b = plain(frames, actions, proprio), rolled(frames, actions, proprio)
    assert a.rollout_loss is None and b.rollout_loss is not None
    features = rolled.encode(frames)
    expected_features, expected_proprio = rolled.rollout(features[:, :1], actions.flatten(2)[:, :3], proprio[:, :1])
    expected = (torch.nn.functional.mse_loss(expected_features, features[:, 1:])
                + 3.0 * torch.nn.functional.mse_loss(expected_proprio, proprio[:, 1:]))
    torch.testing.assert_close(b.rollout_loss, expected)
    torch.testing.assert_close(b.loss, b.prediction_loss + 3.0 * b.proprio_loss + 0.5 * expected + b.decoder_loss)
    torch.testing.assert_close(a.loss, a.prediction_loss + a.proprio_loss + a.decoder_loss)
    with pytest.raises(ValueError, match="loss weights"):
        DinoWMConfig(encoder_config=ENCODER, rollout_loss_weight=-1.0)


def test_features_encoded_beforehand_give_the_same_losses_and_reconstruct_trains_the_decoder():
    """A training run may encode its clips once (the encoder is frozen): `features=` replaces the frames, in
    float16 too, and the decoder's loss then comes from `reconstruct` on frames."""
    model = tiny(proprio_dim=2)
    frames, actions, proprio = clip()
    full = model(frames, actions, proprio)
    cached = model(None, actions, proprio, features=model.encode(frames).half())
    torch.testing.assert_close(cached.prediction_loss, full.prediction_loss, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(cached.loss, full.loss - full.decoder_loss, atol=1e-3, rtol=1e-3)
    assert cached.decoder_loss is None and cached.reconstruction is None
    decoded = model.reconstruct(frames[:, :1])
    torch.testing.assert_close(decoded.loss, full.decoder_loss)
    assert decoded.reconstruction.shape == frames[:, :1].shape
    with pytest.raises(ValueError, match="pixel_values .* or their patch features"):
        model(None, actions, proprio)
    with pytest.raises(ValueError, match=r"expected features \(B, T, 16, 32\)"):
        model(None, actions, proprio, features=torch.zeros(2, 4, 16, 8))
    with pytest.raises(ValueError, match="no decoder"):
        tiny(use_decoder=False).reconstruct(frames)


def test_attention_window_is_history_frames_per_layer():
    """Each layer attends over `history` (3) frames: with one layer, frame 4 sees frames 2..4 only."""
    model = tiny(predictor_layers=1)
    frames, actions, _ = clip(T=5)
    features, flat = model.encode(frames), actions.flatten(2)
    base, _ = model.predict(features, flat)
    changed = features.clone()
    changed[:, 1] += 1.0
    other, _ = model.predict(changed, flat)
    assert torch.allclose(base[:, 4], other[:, 4], atol=1e-5) and not torch.allclose(base[:, 3], other[:, 3])


def test_rollout_equals_teacher_forcing_on_its_own_predictions():
    """The cached rollout (one new frame per step) gives exactly what the predictor gives on the whole
    sequence of observed and predicted frames, also once the sequence is longer than the window."""
    model = tiny(proprio_dim=2)
    frames, actions, proprio = clip(T=5)
    flat = actions.flatten(2)
    for observed in (1, 2):
        features = model.encode(frames[:, :observed])
        past = flat[:, : observed - 1] if observed > 1 else None
        rolled, rolled_proprio = model.rollout(features, flat[:, observed - 1:], proprio[:, :observed], past)
        K = 5 - observed + 1
        assert rolled.shape == (2, K, 16, 32) and rolled_proprio.shape == (2, K, 2)
        sequence = torch.cat([features, rolled[:, :-1]], dim=1)
        sequence_proprio = torch.cat([proprio[:, :observed], rolled_proprio[:, :-1]], dim=1)
        forced, forced_proprio = model.predict(sequence, flat, sequence_proprio)
        assert torch.allclose(rolled, forced[:, observed - 1:], atol=1e-5)
        assert torch.allclose(rolled_proprio, forced_proprio[:, observed - 1:], atol=1e-5)
    # two observed frames need the action taken between them
    with pytest.raises(ValueError, match="past_actions"):
        model.rollout(model.encode(frames[:, :2]), flat, proprio[:, :2])


def test_save_load_round_trip(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "wm")
    loaded = AutoModel.from_pretrained(tmp_path / "wm")
    assert isinstance(loaded, DinoWMModel)
    frames, actions, _ = clip()
    with torch.no_grad():
        assert torch.equal(model(frames, actions).predicted, loaded(frames, actions).predicted)


def test_encode_normalises_pixels_as_the_config_says():
    """The encoder sees [0, 1] pixels normalised by the config's mean and std: ImageNet's by default (DINOv2),
    mean = std = 0.5 (frames in [-1, 1] as they are) for an encoder pre-trained by `ssl_dino_wm`."""
    frames, _, _ = clip()
    imagenet, ssl = tiny(), tiny(image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5))
    with torch.no_grad():
        expected = ssl.encoder(pixel_values=frames.flatten(0, 1)).last_hidden_state[:, 1:]
        assert torch.allclose(ssl.encode(frames).flatten(0, 1), expected, atol=1e-6)
        assert not torch.allclose(imagenet.encode(frames), ssl.encode(frames), atol=1e-3)
    with pytest.raises(ValueError, match="image_mean and image_std of 3 values"):
        DinoWMConfig(encoder_config=ENCODER, image_std=(0.5, 0.5))


def test_bad_input_names_what_was_expected():
    model = tiny()
    frames, actions, _ = clip()
    with pytest.raises(ValueError, match=r"expected frames \(B, T, 3, 32, 32\)"):
        model.encode(frames[..., :16])
    with pytest.raises(ValueError, match="frame_skip 5 x action_dim 2"):
        model(frames, actions[..., :1])
    with pytest.raises(ValueError, match="proprio of shape"):
        tiny(proprio_dim=2).predict(model.encode(frames[:, :1]), actions.flatten(2)[:, :1])
    with pytest.raises(ValueError, match="no decoder"):
        tiny(use_decoder=False).decode(model.encode(frames))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        DinoWMConfig(encoder_config={**ENCODER, "patch_size": 7})
