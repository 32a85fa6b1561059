from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel

import wm_hub
from wm_hub.checkpoint import CheckpointError
from wm_hub.models.genie.configuration_genie import DynamicsConfig, GenieTokenizerConfig, LatentActionConfig
from wm_hub.models.genie.modeling_genie import DynamicsModel, LatentActionModel, VideoTokenizer
from wm_hub.models.genie.pipeline_genie import GeniePipeline

SIZE = 16


def tiny_parts(seed: int = 0):
    torch.manual_seed(seed)
    tok = VideoTokenizer(GenieTokenizerConfig(image_size=SIZE, patch_size=4, hidden_size=16, encoder_layers=1,
                                              decoder_layers=1, num_heads=2, codebook_size=32, code_dim=8,
                                              max_frames=3))
    lam = LatentActionModel(LatentActionConfig(image_size=SIZE, patch_size=8, hidden_size=16, encoder_layers=1,
                                               decoder_layers=1, num_heads=2, num_actions=4, code_dim=8))
    dyn = DynamicsModel(DynamicsConfig(vocab_size=32, grid_size=4, num_actions=4, hidden_size=16, num_layers=2,
                                       num_heads=2, maskgit_steps=3, max_frames=3))
    return tok, lam, dyn


def video(B=2, T=4, seed=0):
    return torch.rand(B, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_shapes_and_outputs():
    tok, lam, dyn = tiny_parts()
    v = video()
    out = tok(v)
    assert out.reconstruction.shape == v.shape and out.indices.shape == (2, 4, 4, 4)
    assert out.indices.max() < 32 and out.loss.ndim == 0
    torch.testing.assert_close(tok.encode(v), out.indices)
    assert tok.decode(out.indices).shape == v.shape
    lo = lam(v)
    assert lo.reconstruction.shape == (2, 3, 3, SIZE, SIZE) and lo.actions.shape == (2, 3) and lo.actions.max() < 4
    do = dyn(out.indices, lo.actions)
    assert do.logits.shape == (2, 4, 16, 32) and do.loss.ndim == 0 and 0 <= do.accuracy <= 1


def test_tokenizer_and_lam_are_causal():
    tok, lam, _ = tiny_parts()
    tok.eval(), lam.eval()
    v = video(T=5)
    v2 = v.clone()
    v2[:, 3] = -v2[:, 3]
    with torch.no_grad():
        assert torch.equal(tok.encode(v)[:, :3], tok.encode(v2)[:, :3])
        torch.testing.assert_close(tok(v).reconstruction[:, :3], tok(v2).reconstruction[:, :3])
        # a_t (between frames t and t+1) depends on frames <= t+1 only
        assert torch.equal(lam.infer_actions(v)[:, :2], lam.infer_actions(v2)[:, :2])


def test_tokenizer_streaming_encode_keeps_the_inference_window():
    tok, _, _ = tiny_parts()  # max_frames 3
    tok.eval()
    v = video(T=5)
    v2 = v.clone()
    v2[:, 0] = -v2[:, 0]
    features = []  # the encoder's output before quantization, (B, T, N, code_dim) per call
    tok.to_code.register_forward_hook(lambda module, args, out: features.append(out))

    def encoded(encode, clip):
        features.clear()
        ids = encode(clip)
        return ids, torch.cat(features, dim=1)

    with torch.no_grad():
        streamed, f_stream = encoded(tok.encode_streaming, v)
        whole, f_whole = encoded(tok.encode, v)
        assert torch.equal(streamed[:, :3], whole[:, :3])  # within the window: the whole-clip tokens
        torch.testing.assert_close(f_stream[:, :3], f_whole[:, :3])
        _, f_stream2 = encoded(tok.encode_streaming, v2)
        torch.testing.assert_close(f_stream[:, 3:], f_stream2[:, 3:])  # frame 1 is out of their window
        _, f_whole2 = encoded(tok.encode, v2)
        assert (f_whole[:, 3:] - f_whole2[:, 3:]).abs().max() > 1e-4  # the whole clip sees frame 1


def test_dynamics_masking_leaves_first_frame_and_uses_rate():
    _, _, dyn = tiny_parts()
    tokens = torch.randint(0, 32, (64, 3, 16))
    actions = torch.randint(0, 4, (64, 2))
    seen = {}

    def grab(module, args, output):
        seen["inputs"] = args[0]

    handle = dyn.token_embed.register_forward_hook(grab)
    dyn(tokens, actions, generator=torch.Generator().manual_seed(0))
    handle.remove()
    masked = seen["inputs"] == dyn.config.mask_token_id
    assert not masked[:, 0].any()
    rate = masked[:, 1:].float().mean(dim=(1, 2))
    assert 0.3 < rate.min() and rate.max() <= 1.0 and 0.65 < rate.mean() < 0.85


def test_dynamics_clean_context_keeps_a_prefix_unmasked():
    config = DynamicsConfig(vocab_size=32, grid_size=4, num_actions=4, hidden_size=16, num_layers=1, num_heads=2,
                            clean_context_prob=1.0)
    mask = DynamicsModel(config)._training_mask(torch.Size((256, 5, 16)), torch.Generator().manual_seed(0), "cpu")
    frame_masked = mask.any(-1)  # (B, T)
    first = frame_masked.float().argmax(1)  # the first frame with a hidden token
    assert not frame_masked[:, 0].any()
    # every frame before the first masked one is clean, and the cut falls at every frame 1..T-1
    assert all(not frame_masked[b, : int(first[b])].any() for b in range(256))
    assert set(first.tolist()) == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="clean_context_prob"):
        DynamicsConfig(clean_context_prob=1.5)


def test_dynamics_changed_token_weight_reweights_the_loss():
    tokens = torch.randint(0, 32, (4, 3, 16))
    tokens[:, 1, :8] = tokens[:, 0, :8]  # half of frame 2 is unchanged
    actions = torch.randint(0, 4, (4, 2))
    mask = torch.zeros(4, 3, 16, dtype=torch.bool)
    mask[:, 1] = True
    losses = {}
    for w in (1.0, 5.0):
        torch.manual_seed(0)
        dyn = DynamicsModel(DynamicsConfig(vocab_size=32, grid_size=4, num_actions=4, hidden_size=16, num_layers=1,
                                           num_heads=2, changed_token_weight=w))
        out = dyn(tokens, actions, mask=mask)
        ce = torch.nn.functional.cross_entropy(out.logits[:, 1].reshape(-1, 32), tokens[:, 1].reshape(-1),
                                               reduction="none").view(4, 16)
        changed = tokens[:, 1] != tokens[:, 0]
        expected = (ce * torch.where(changed, w, 1.0)).sum() / torch.where(changed, w, 1.0).sum()
        assert torch.allclose(out.loss, expected)
        hit = out.logits[:, 1].argmax(-1) == tokens[:, 1]
        assert torch.allclose(out.changed_accuracy, hit[changed].float().mean())
        losses[w] = out.loss.item()
    assert losses[1.0] != losses[5.0]


def test_dynamics_is_causal_and_checks_actions():
    _, _, dyn = tiny_parts()
    dyn.eval()
    tokens = torch.randint(0, 32, (1, 4, 16))
    actions = torch.randint(0, 4, (1, 3))
    mask = torch.zeros(1, 4, 16, dtype=torch.bool)
    base = dyn(tokens, actions, mask=mask).logits
    changed = tokens.clone()
    changed[:, 2] = (changed[:, 2] + 1) % 32
    torch.testing.assert_close(dyn(changed, actions, mask=mask).logits[:, :2], base[:, :2])
    with pytest.raises(ValueError, match=r"range\(4\)"):
        dyn(tokens, torch.full((1, 3), 4), mask=mask)
    with pytest.raises(ValueError, match=r"expected actions \(B, T-1\)"):
        dyn(tokens, actions[:, :2])


@pytest.mark.parametrize("part", [0, 1, 2])
def test_loss_goes_down_on_a_tiny_batch(part):
    tok, lam, dyn = tiny_parts()
    v = video(B=2, T=3)
    tokens, actions = tok.encode(v).detach(), torch.randint(0, 4, (2, 2))
    model = (tok, lam, dyn)[part]
    run = [lambda: tok(v).loss, lambda: lam(v).loss,
           lambda: dyn(tokens, actions, generator=torch.Generator().manual_seed(0)).loss][part]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = run().item()
    for _ in range(30):
        opt.zero_grad()
        loss = run()
        loss.backward()
        opt.step()
    assert run().item() < 0.7 * first


def test_save_load_round_trip_and_auto_model(tmp_path):
    tok, lam, dyn = tiny_parts()
    v = video()
    for model in (tok, lam, dyn):
        model.eval().save_pretrained(tmp_path / type(model).__name__)
        loaded = AutoModel.from_pretrained(tmp_path / type(model).__name__)
        assert type(loaded) is type(model)
    with torch.no_grad():
        a = VideoTokenizer.from_pretrained(tmp_path / "VideoTokenizer")(v)
        torch.testing.assert_close(a.reconstruction, tok(v).reconstruction, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="holds a 'genie_tokenizer' checkpoint"):
        DynamicsModel.from_pretrained(tmp_path / "VideoTokenizer")


def tiny_pipeline():
    tok, lam, dyn = tiny_parts()
    return GeniePipeline(tokenizer=tok, dynamics=dyn, lam=lam)


def prompt():
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_pipeline_shapes_reproducible_and_expected_slice():
    pipe = tiny_pipeline()
    out = pipe(prompt(), actions=[1, 2, 3, 0], generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 5, SIZE, SIZE, 3) and out.frames.dtype == np.uint8
    again = pipe(prompt(), actions=[1, 2, 3, 0], generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out.frames, again.frames)
    pt = pipe([prompt(), prompt()], actions=[[1, 2], [3, 0]], output_type="pt",
              generator=torch.Generator().manual_seed(0)).frames
    assert pt.shape == (2, 3, 3, SIZE, SIZE) and pt.min() >= -1 and pt.max() <= 1
    pil = pipe(prompt(), actions=[1], output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 2 and pil[0][0].size == (SIZE, SIZE)


def test_session_matches_pipeline_call():
    pipe = tiny_pipeline()
    full = pipe(prompt(), actions=[1, 2, 3], generator=torch.Generator().manual_seed(3)).frames[0]
    session = pipe.start(prompt(), generator=torch.Generator().manual_seed(3))
    steps = [session.step(a) for a in (1, 2, 3)]
    np.testing.assert_array_equal(np.stack(steps), full[1:])
    assert steps[0].shape == (SIZE, SIZE, 3)
    # the caches hold at most max_frames - 1 frames, whatever the rollout length
    for _ in range(4):
        session.step(0)
    assert session.dynamics_cache.kv[0][0].shape[2] == 2 and session.decoder_cache.kv[0][0].shape[2] == 2
    session.step_tensor(1).mul_(0.5)  # steps run in inference mode, but hand back a tensor users may modify


def test_pipeline_bad_inputs():
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match=r"range\(4\)"):
        pipe(prompt(), actions=[4])
    with pytest.raises(ValueError, match=r"range\(4\)"):
        pipe.start(prompt()).step(-1)
    with pytest.raises(ValueError, match="expected a uint8 prompt image"):
        pipe(prompt().astype(np.float32), actions=[0])
    with pytest.raises(ValueError, match="output_type"):
        pipe(prompt(), actions=[0], output_type="gif")
    with pytest.warns(UserWarning, match=r"resized to \(16, 16\)"):
        out = pipe(np.zeros((40, 30, 3), np.uint8), actions=[0])
    assert out.frames.shape == (1, 2, SIZE, SIZE, 3)


def test_pipeline_save_load_identical(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "genie")
    loaded = wm_hub.load(tmp_path / "genie")
    assert isinstance(loaded, GeniePipeline) and isinstance(loaded.lam, LatentActionModel)
    a = pipe(prompt(), actions=[1, 2], generator=torch.Generator().manual_seed(0)).frames
    b = loaded(prompt(), actions=[1, 2], generator=torch.Generator().manual_seed(0)).frames
    np.testing.assert_array_equal(a, b)
    v = video(B=1, T=3)
    assert torch.equal(loaded.infer_actions(v), pipe.infer_actions(v))
    (tmp_path / "genie" / "dynamics" / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        GeniePipeline.from_pretrained(tmp_path / "genie")


@pytest.mark.parametrize("window", [1, 2])
def test_lam_history_dropout_shows_the_decoder_only_the_last_frames(window):
    torch.manual_seed(0)
    lam = LatentActionModel(LatentActionConfig(image_size=SIZE, patch_size=8, hidden_size=16, encoder_layers=1,
                                               decoder_layers=1, num_heads=2, num_actions=4, code_dim=8,
                                               history_dropout=1.0, history_dropout_frames=window)).train()
    context, actions = torch.randn(2, 4, 4, 16), torch.randn(2, 4, 16)
    changed = context.clone()
    changed[:, 0] += torch.randn_like(changed[:, 0])
    a, b = lam.decode(context, actions), lam.decode(changed, actions)
    assert (a[:, :window] - b[:, :window]).abs().max() > 1e-4  # frames within the window see frame 1
    torch.testing.assert_close(a[:, window:], b[:, window:])  # later frames do not
    other = actions.clone()
    other[:, 2] = torch.randn(2, 16)
    changed_action = lam.decode(context, other) - a
    assert changed_action[:, 2].abs().max() > 1e-4 and changed_action[:, :2].abs().max() == 0  # causal in actions
    lam.eval()  # at inference (and with history_dropout 0) the decoder is causal over the whole clip
    assert (lam.decode(context, actions)[:, window:] - lam.decode(changed, actions)[:, window:]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="history_dropout"):
        LatentActionConfig(history_dropout=1.5)
    with pytest.raises(ValueError, match="history_dropout_frames"):
        LatentActionConfig(history_dropout_frames=0)


def test_models_name_the_video_they_expect():
    tok, lam, _ = tiny_parts()
    with pytest.raises(ValueError, match=r"expected video \(B, T>=1, 3, 16, 16\), got shape \(1, 2, 4, 16, 16\)"):
        tok(torch.zeros(1, 2, 4, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"expected video \(B, T>=2, 3, 16, 16\)"):
        lam(torch.zeros(1, 1, 3, SIZE, SIZE))
