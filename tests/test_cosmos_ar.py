"""The Cosmos-style autoregressive world model: factorised codebook, causality, KV cache, generate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

import wm_hub  # noqa: F401  (registers the Auto classes)
from wm_hub.models.cosmos.configuration_cosmos import WorldARConfig
from wm_hub.models.cosmos.modeling_cosmos import WorldARModel


def tiny(cross_attention_dim: int | None = None) -> WorldARModel:
    torch.manual_seed(0)
    config = WorldARConfig(fsq_levels=(4, 3), latent_height=2, latent_width=3, max_latent_frames=4, hidden_size=24,
                           num_hidden_layers=2, num_attention_heads=2, cross_attention_dim=cross_attention_dim)
    return WorldARModel(config).eval()


def ids(B=2, L=12, seed=0):
    return torch.randint(0, 12, (B, L), generator=torch.Generator().manual_seed(seed))


def test_loss_is_the_cross_entropy_over_the_whole_codebook():
    model = tiny()
    tokens = ids()
    labels = tokens.clone()
    labels[:, :6] = -100  # the first latent frame is context, not scored
    out = model(tokens, labels=labels, use_cache=False)
    assert out.logits.shape == (2, 12, 12)
    expected = F.cross_entropy(out.logits[:, 5:-1].reshape(-1, 12), tokens[:, 6:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    nll, correct = model.score(tokens)
    torch.testing.assert_close(nll[:, 5:].mean(), expected)
    assert torch.equal(correct, out.logits[:, :-1].argmax(-1) == tokens[:, 1:])
    assert model.digits(torch.tensor([0, 1, 4, 11])).tolist() == [[0, 0], [1, 0], [0, 1], [3, 2]]


def test_causal_and_cached_decoding_matches_the_whole_sequence():
    model = tiny()
    tokens = ids()
    with torch.no_grad():
        full = model(tokens, use_cache=False).logits
        changed = tokens.clone()
        changed[:, 8] = (changed[:, 8] + 1) % 12
        torch.testing.assert_close(model(changed, use_cache=False).logits[:, :8], full[:, :8], rtol=0, atol=0)
        prefix = model(tokens[:, :7], use_cache=True)
        step = model(tokens[:, 7:9], cache=prefix.cache, use_cache=True)
    torch.testing.assert_close(step.logits, full[:, 7:9], rtol=1e-5, atol=1e-5)
    assert prefix.cache.get_seq_length() == 9


def test_generate_is_reproducible_and_respects_top_k():
    model = tiny()
    context = ids(L=6)
    kwargs = {"max_new_tokens": 6, "do_sample": True, "top_k": 1}
    greedy = model.generate(context, do_sample=False, max_new_tokens=6)
    assert greedy.shape == (2, 12) and torch.equal(greedy[:, :6], context)
    torch.testing.assert_close(model.generate(context, **kwargs), greedy)  # top-1 sampling is greedy
    torch.manual_seed(1)
    a = model.generate(context, max_new_tokens=6, do_sample=True)
    torch.manual_seed(1)
    torch.testing.assert_close(model.generate(context, max_new_tokens=6, do_sample=True), a)


def test_text_conditioning_by_cross_attention():
    model = tiny(cross_attention_dim=8)
    text = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    a = model(ids(), encoder_hidden_states=text, encoder_attention_mask=mask, use_cache=False).logits
    b = model(ids(), encoder_hidden_states=text * 2, encoder_attention_mask=mask, use_cache=False).logits
    assert not torch.allclose(a, b)
    padded = text.clone()
    padded[0, 3:] = 100.0  # masked-out text positions change nothing
    c = model(ids(), encoder_hidden_states=padded, encoder_attention_mask=mask, use_cache=False).logits
    torch.testing.assert_close(c[0], a[0])
    out = model.generate(ids(L=6), max_new_tokens=3, do_sample=False, encoder_hidden_states=text,
                         encoder_attention_mask=mask)
    assert out.shape == (2, 9)
    with pytest.raises(ValueError, match="pass encoder_hidden_states exactly when"):
        model(ids())


def test_bad_input_and_round_trip(tmp_path):
    model = tiny()
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 12\)"):
        model(torch.tensor([[0, 12]]))
    with pytest.raises(ValueError, match="exceeds the model's 24"):
        model(torch.zeros(1, 25, dtype=torch.long), use_cache=False)
    with pytest.raises(ValueError, match="padded sequences"):
        model(ids(), attention_mask=torch.tensor([[1] * 12, [0] + [1] * 11]))
    with pytest.raises(ValueError, match="FSQ levels >= 2"):
        WorldARConfig(fsq_levels=(4, 1))
    model.save_pretrained(tmp_path / "ar")
    loaded = AutoModel.from_pretrained(tmp_path / "ar")
    assert isinstance(loaded, WorldARModel)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids(), use_cache=False).logits, model(ids(), use_cache=False).logits)


def tiny_pipeline(cross_attention_dim: int | None = None):
    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    torch.manual_seed(0)
    vae = CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, quantizer="discrete",
                               fsq_levels=(4, 3))
    config = WorldARConfig(fsq_levels=(4, 3), latent_height=2, latent_width=2, max_latent_frames=3, hidden_size=24,
                           num_hidden_layers=1, num_attention_heads=2)
    return ARVideo2WorldPipeline(transformer=WorldARModel(config), vae=vae)


def test_ar_pipeline_continues_a_video_reproducibly(tmp_path):
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    pipe = tiny_pipeline()
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    out = pipe(image=image, num_frames=9, generator=torch.Generator().manual_seed(0), output_type="pt").frames
    assert out.shape == (1, 9, 3, 16, 16)
    again = pipe(image=image, num_frames=9, generator=torch.Generator().manual_seed(0), output_type="pt").frames
    torch.testing.assert_close(out, again)
    # The given frame's tokens are kept: its reconstruction starts the video.
    torch.testing.assert_close(out[:, 0], pipe.vae.detokenize(pipe.vae.tokenize(image[:, None]), 1)[:, 0].clamp(-1, 1))
    # Longer than the context of 3 latent frames: generated window by window.
    long = pipe(image=image, num_frames=17, do_sample=False, output_type="np").frames
    assert long.shape == (1, 17, 16, 16, 3) and long.dtype == np.uint8
    pipe.save_pretrained(tmp_path / "ar")
    loaded = ARVideo2WorldPipeline.from_pretrained(tmp_path / "ar")
    torch.testing.assert_close(
        loaded(image=image, num_frames=9, generator=torch.Generator().manual_seed(0), output_type="pt").frames, out)


def test_ar_pipeline_bad_input():
    pipe = tiny_pipeline()
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    with pytest.raises(ValueError, match="leave nothing to generate"):
        pipe(image=image, num_frames=1)
    with pytest.warns(UserWarning, match="exceed the model's context of 3: it sees the last 2"):
        out = pipe(video=torch.rand(1, 13, 3, 16, 16) * 2 - 1, num_frames=17, do_sample=False, output_type="pt")
    assert out.frames.shape[1] == 17  # the 13 given frames (4 latent frames), then one generated latent frame
    with pytest.raises(ValueError, match="needs the discrete tokenizer"):
        from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
        from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

        ARVideo2WorldPipeline(transformer=pipe.transformer, vae=CausalVideoTokenizer(base_channels=8, num_heads=2))


def test_evaluation_and_card(tmp_path):
    from wm_hub.cli import main as cli
    from wm_hub.models.cosmos import evaluation_cosmos

    assert cli(["data", "make", "physics", "--num-clips", "2", "--frames", "17", "--out", str(tmp_path / "d")]) == 0
    config = WorldARConfig(fsq_levels=(4, 3), latent_height=8, latent_width=8, max_latent_frames=3, hidden_size=24,
                           num_hidden_layers=1, num_attention_heads=2)
    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    torch.manual_seed(0)
    vae = CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, quantizer="discrete",
                               fsq_levels=(4, 3))
    pipe = ARVideo2WorldPipeline(transformer=WorldARModel(config), vae=vae)
    measured = evaluation_cosmos.evaluate(pipe, str(tmp_path / "d"), count=2)
    metrics = {m.name: m.value for m in measured}
    assert 0 < metrics["teacher-forced next-token cross-entropy"] < 2 * np.log(12)
    assert 0 <= metrics["teacher-forced next-token accuracy"] <= 1
    assert {"Video2World (autoregressive) PSNR, 16 frames", "baseline: copy the first frame PSNR, 8 frames",
            "Video2World (autoregressive) object position error, 16 frames"} <= set(metrics)
    folder = tmp_path / "card"
    pipe.save_pretrained(folder)
    evaluation_cosmos.write_card(folder, pipe, measured, "wm-hub eval card --data d", "Trained for a test.")
    card = (folder / "README.md").read_text()
    assert "autoregressive world model" in card and "teacher-forced next-token accuracy" in card
    assert "continued held-out scene" in evaluation_cosmos.demo(pipe, tmp_path / "gif", "ar")


def test_control_inputs_start_at_zero_and_reach_the_token_each_position_predicts():
    from wm_hub.models.cosmos.finetuning_cosmos import extend_for_control

    base = tiny()
    model = extend_for_control(base, camera=True, action_dim=2, frames_per_latent=2).eval()
    tokens = ids(B=3, L=24)  # 4 latent frames of 2x3 tokens
    actions, camera = torch.randn(3, 4, 4), torch.randn(3, 4, 12, 2, 3)
    with torch.no_grad():  # zero-initialised: the extended model predicts exactly as the base
        torch.testing.assert_close(model(tokens, use_cache=False, actions=actions, camera=camera).logits,
                                   base(tokens, use_cache=False).logits)
        for p in (*model.action_embed.parameters(), *model.camera_embed.parameters()):
            p.normal_(std=0.3)
        full = model(tokens, use_cache=False, actions=actions, camera=camera).logits
        # With the KV cache, step by step, the same logits: positions keep their controls
        out = model(tokens[:, :7], actions=actions, camera=camera)
        step = model(tokens[:, 7:13], cache=out.cache, actions=actions, camera=camera)
        torch.testing.assert_close(step.logits, full[:, 7:13], rtol=1e-4, atol=1e-5)
        # Position 5 (the last of latent frame 0) predicts the first token of latent frame 1: it sees frame 1's
        # actions, and frame 2's actions reach no position before 11
        changed = actions.clone()
        changed[:, 1] += 1
        moved = model(tokens, use_cache=False, actions=changed, camera=camera).logits
        assert torch.equal(moved[:, :5], full[:, :5]) and not torch.allclose(moved[:, 5], full[:, 5])
        changed = actions.clone()
        changed[:, 2] += 1
        moved = model(tokens, use_cache=False, actions=changed, camera=camera).logits
        assert torch.equal(moved[:, :11], full[:, :11]) and not torch.allclose(moved[:, 11], full[:, 11])
    # generate() passes the controls on at every step: greedy decoding by hand agrees
    with torch.no_grad():
        generated = model.generate(tokens[:, :6], max_new_tokens=12, do_sample=False, actions=actions, camera=camera)
        by_hand = tokens[:, :6]
        for _ in range(12):
            logits = model(by_hand, use_cache=False, actions=actions, camera=camera).logits[:, -1]
            by_hand = torch.cat([by_hand, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, by_hand)


def test_control_inputs_bad_input():
    from wm_hub.models.cosmos.finetuning_cosmos import extend_for_control

    model = extend_for_control(tiny(), action_dim=2, frames_per_latent=2)
    tokens = ids(B=1, L=24)
    with pytest.raises(ValueError, match="controls for 3 latent frames do not cover the sequence's 4"):
        model(tokens, use_cache=False, actions=torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"expected actions \(B, T, frames_per_latent \* action_dim\) = \(B, T, 4\)"):
        model(tokens, use_cache=False, actions=torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="takes no camera input: fine-tune it for camera control first"):
        model(tokens, use_cache=False, camera=torch.zeros(1, 4, 12, 2, 3))
    with pytest.raises(ValueError, match="takes no actions: fine-tune it for action control first"):
        tiny()(tokens, use_cache=False, actions=torch.zeros(1, 4, 4))


def test_ar_pipeline_takes_actions_within_its_context():
    from wm_hub.models.cosmos.finetuning_cosmos import extend_for_control
    from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline

    plain = tiny_pipeline()
    model = extend_for_control(plain.transformer, action_dim=2)
    for p in model.action_embed.parameters():
        p.data.normal_(std=0.5)
    pipe = ARVideo2WorldPipeline(transformer=model, vae=plain.vae)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    run = {"image": image, "num_frames": 9, "do_sample": False, "output_type": "pt"}
    left, right = (pipe(**run, actions=np.tile(a, (8, 1))).frames for a in ([-1.0, 0.0], [1.0, 0.0]))
    assert left.shape == (1, 9, 3, 16, 16) and not torch.equal(left, right)
    with pytest.raises(ValueError, match=r"with camera or actions, num_frames can be at most 9 \(the model's context"):
        pipe(image=image, num_frames=13, actions=np.zeros((12, 2)))
    with pytest.raises(ValueError, match=r"expected actions \(T - 1, 2\) or \(B, T - 1, 2\) with T = num_frames = 9"):
        pipe(**run, actions=np.zeros((9, 2)))
    with pytest.raises(ValueError, match="takes no actions: load one fine-tuned for action control"):
        plain(**run, actions=np.zeros((8, 2)))
