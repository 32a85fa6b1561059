"""Text2World / Video2World pipelines from tiny random parts (64x64, 2 layers, 2 steps): shapes,
determinism, conditioning frames kept, guidance, callbacks, one folder for both, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import EDMEulerScheduler
from transformers import T5EncoderModel

import wm_hub
from wm_hub.checkpoint import CheckpointError
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.pipeline_cosmos import Text2WorldPipeline, Video2WorldPipeline
from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config
from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel

CAPTIONS = ["a red ball falls and bounces", "a blue box slides left; the paddle pushes a green ball right"]


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    vae = CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, latent_channels=4,
                               latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4)
    tokenizer = build_caption_tokenizer(CAPTIONS, model_max_length=64)
    text_encoder = T5EncoderModel(caption_encoder_config(tokenizer, d_model=16, num_layers=1, num_heads=2))
    transformer = WorldTransformer3DModel(in_channels=4, sample_size=8, hidden_size=24, num_layers=2, num_heads=2,
                                          text_dim=16)
    for p in transformer.parameters():  # leave adaLN-Zero's start, so outputs depend on every input
        p.data.add_(0.05 * torch.randn_like(p))
    return {"transformer": transformer, "vae": vae, "scheduler": EDMEulerScheduler(sigma_data=1.0),
            "text_encoder": text_encoder, "tokenizer": tokenizer}


def test_text2world_shapes_and_determinism(parts):
    pipe = Text2WorldPipeline(**parts)
    kwargs = {"num_frames": 9, "num_inference_steps": 2}
    a = pipe(CAPTIONS[0], generator=torch.Generator().manual_seed(0), **kwargs).frames
    assert a.shape == (1, 9, 64, 64, 3) and a.dtype == np.uint8
    b = pipe(CAPTIONS[0], generator=torch.Generator().manual_seed(0), **kwargs).frames
    c = pipe(CAPTIONS[0], generator=torch.Generator().manual_seed(1), **kwargs).frames
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    pt = pipe(CAPTIONS, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs).frames
    assert pt.shape == (2, 9, 3, 64, 64) and pt.min() >= -1 and pt.max() <= 1
    pil = pipe(CAPTIONS[0], generator=torch.Generator().manual_seed(0), output_type="pil", **kwargs).frames
    assert len(pil) == 1 and len(pil[0]) == 9 and pil[0][0].size == (64, 64)
    unguided = pipe(CAPTIONS[0], generator=torch.Generator().manual_seed(0), guidance_scale=1.0, **kwargs).frames
    assert not np.array_equal(a, unguided)  # guidance changes the sample


def test_video2world_keeps_the_given_frames(parts):
    pipe = Video2WorldPipeline(**parts)
    video = torch.rand(1, 5, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    out = pipe(CAPTIONS[0], video=video, num_frames=9, num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == (1, 9, 3, 64, 64)
    with torch.no_grad():
        reconstruction = parts["vae"](video).sample.clamp(-1, 1)
    # the causal decoder makes the first frames depend only on the conditioning latents
    torch.testing.assert_close(out[:, :5], reconstruction, atol=1e-5, rtol=1e-5)
    image = (video[0, 0].permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255)).to(torch.uint8).numpy()
    from_image = pipe(CAPTIONS[0], image=image, num_frames=5, num_inference_steps=2).frames
    assert from_image.shape == (1, 5, 64, 64, 3)


def test_callback_and_one_folder_for_both(parts, tmp_path):
    pipe = Text2WorldPipeline(**parts)
    seen = []
    pipe(CAPTIONS[0], num_frames=5, num_inference_steps=3,
         callback_on_step_end=lambda p, i, sigma, values: seen.append((i, float(sigma), values["latents"].shape)))
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] > seen[1][1] > seen[2][1]
    pipe.save_pretrained(tmp_path / "world")
    g = torch.Generator
    expected = pipe(CAPTIONS[0], num_frames=5, num_inference_steps=2, generator=g().manual_seed(0)).frames
    for cls in (Text2WorldPipeline, Video2WorldPipeline):
        loaded = cls.from_pretrained(tmp_path / "world")
        assert isinstance(loaded.transformer, WorldTransformer3DModel)
    loaded = wm_hub.load(tmp_path / "world")
    assert isinstance(loaded, Text2WorldPipeline)
    again = loaded(CAPTIONS[0], num_frames=5, num_inference_steps=2, generator=g().manual_seed(0)).frames
    assert np.array_equal(again, expected)
    from wm_hub.models.genie.pipeline_genie import GeniePipeline

    with pytest.raises(CheckpointError, match="holds a 'Text2WorldPipeline' pipeline"):
        GeniePipeline.from_pretrained(tmp_path / "world")


def test_a_float16_folder_loads_in_float32_unless_told(parts, tmp_path):
    import copy

    half = Text2WorldPipeline(**copy.deepcopy(parts)).to(torch.float16)  # how shipped folders stay small
    half.save_pretrained(tmp_path / "half")
    loaded = Text2WorldPipeline.from_pretrained(tmp_path / "half")
    for name in ("transformer", "vae", "text_encoder"):
        assert {p.dtype for p in getattr(loaded, name).parameters()} == {torch.float32}, name
    half = Text2WorldPipeline.from_pretrained(tmp_path / "half", torch_dtype=torch.float16)
    assert {p.dtype for p in half.transformer.parameters()} == {torch.float16}
    assert torch.float16 in {p.dtype for p in half.text_encoder.parameters()}  # T5 keeps some layers in float32


def test_bad_input(parts):
    pipe = Video2WorldPipeline(**parts)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.warns(UserWarning, match="num_frames=7 does not fit .* generating 9 frames"):
        assert pipe(CAPTIONS[0], image=image, num_frames=7, num_inference_steps=1).frames.shape[1] == 9
    with pytest.warns(UserWarning, match="prompt of more than 64 tokens truncated"):
        pipe(" ".join(["ball"] * 80), image=image, num_frames=5, num_inference_steps=1)
    with pytest.warns(UserWarning, match=r"image of size \(48, 48\) resized to \(64, 64\)"):
        pipe(CAPTIONS[0], image=np.zeros((48, 48, 3), np.uint8), num_frames=5, num_inference_steps=1)
    with pytest.warns(UserWarning, match="3 conditioning frames do not fit .* using the first 1"):
        pipe(CAPTIONS[0], video=[image] * 3, num_frames=5, num_inference_steps=1)
    with pytest.raises(ValueError, match="leave nothing to generate"):
        pipe(CAPTIONS[0], video=[image] * 5, num_frames=5, num_inference_steps=1)
    with pytest.raises(ValueError, match="exactly one of `image` or `video`"):
        pipe(CAPTIONS[0], num_frames=5)
    with pytest.raises(ValueError, match="output_type must be one of"):
        pipe(CAPTIONS[0], image=image, output_type="mp4")
    with pytest.raises(ValueError, match="expected a uint8 image"):
        pipe(CAPTIONS[0], image=np.zeros((64, 64, 4), np.uint8))


def test_world_evaluation_card_and_demo(parts, tmp_path, capsys, monkeypatch):
    from huggingface_hub import ModelCard

    from wm_hub.cli import main

    assert main(["data", "make", "physics", "--num-clips", "2", "--frames", "33", "--seed", "1000000",
                 "--out", str(tmp_path / "eval")]) == 0
    cards = tmp_path / "model_cards"
    Text2WorldPipeline(**parts).save_pretrained(cards / "world-tiny")
    notes = tmp_path / "notes.md"
    notes.write_text("Random weights.")
    monkeypatch.setenv("WM_HUB_MODEL_CARDS", str(cards))
    capsys.readouterr()
    assert main(["eval", str(cards / "world-tiny"), "--data", str(tmp_path / "eval"), "--count", "2",
                 "--write-card", "--training-notes", str(notes)]) == 0
    out = capsys.readouterr().out
    for name in ("Video2World PSNR, 8 frames", "baseline: copy the first frame SSIM, 16 frames",
                 "Video2World object position error, 16 frames", "Text2World caption accuracy (guidance 3)",
                 "Text2World caption accuracy (no guidance)", "Text2World named objects present (guidance 3)",
                 "Text2World motion verbs shown (guidance 3)", "caption accuracy of the real clips",
                 "caption accuracy of the tokenizer's reconstructions"):
        assert name in out
    card = ModelCard.load(cards / "world-tiny" / "README.md")
    assert card.data.pipeline_tag == "text-to-video" and len(card.data.eval_results) == 15
    assert "Random weights." in card.text and 'Text2WorldPipeline.from_pretrained("world-tiny")' in card.text
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert "world-tiny: continued held-out scene 4000000" in capsys.readouterr().out
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "demo" / "world-tiny.gif", index=None).shape == (33, 256, 512, 3)


def test_frames_export_to_mp4_and_gif(parts, tmp_path):
    import imageio.v3 as iio
    from diffusers.utils import export_to_gif, export_to_video

    frames = Text2WorldPipeline(**parts)(CAPTIONS[0], num_frames=5, num_inference_steps=1, output_type="pil").frames[0]
    mp4 = export_to_video([np.asarray(f) for f in frames], str(tmp_path / "world.mp4"), fps=15)
    assert iio.imread(mp4, index=None).shape[0] == 5
    gif = export_to_gif(frames, str(tmp_path / "world.gif"))
    assert iio.imread(gif, index=None).shape[:3] == (5, 64, 64)


def test_guidance_sweep_prints_one_row_per_scale(parts, tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    import sweep_cosmos_guidance

    from wm_hub.cli import main

    assert main(["data", "make", "physics", "--num-clips", "2", "--frames", "33", "--seed", "1000000",
                 "--out", str(tmp_path / "eval")]) == 0
    Text2WorldPipeline(**parts).save_pretrained(tmp_path / "world")
    capsys.readouterr()
    argv = [str(tmp_path / "world"), "--data", str(tmp_path / "eval"), "--count", "2", "--steps", "2"]
    assert sweep_cosmos_guidance.main([*argv, "--scales", "1", "4", "--out", str(tmp_path / "t.md")]) == 0
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 1", "| 4", "| real clips (ceiling)",
                                                     "| tokenizer reconstructions (the model's ceiling)"]
    assert all(0 <= float(v) <= 1 for line in lines[2:] for v in line.strip("| ").split(" | ")[1:])
    assert capsys.readouterr().out.strip() == "\n".join(lines)
    with pytest.raises(SystemExit):
        sweep_cosmos_guidance.main([*argv, "--scales", "0.5"])
