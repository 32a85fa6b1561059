from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from wm_hub.checkpoint import CheckpointError
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer, haar_analysis, haar_synthesis

SMALL = {"base_channels": 8, "channel_multipliers": (1, 2, 2, 2), "num_heads": 2}


@pytest.fixture(scope="module", params=["continuous", "discrete"])
def tokenizer(request):
    torch.manual_seed(0)
    return CausalVideoTokenizer(**SMALL, quantizer=request.param, fsq_levels=(4, 4, 3)).eval()


def clip(T=9, B=2, size=32):
    return torch.rand(B, T, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@torch.no_grad()
def test_shapes(tokenizer):
    latents = tokenizer.encode(clip()).latent_dist.mode()
    channels = 16 if tokenizer.config.quantizer == "continuous" else 3
    assert latents.shape == (2, 3, channels, 4, 4)
    assert torch.equal(tokenizer.encode(clip()).latent_dist.sample(), latents)
    assert tokenizer.decode(latents).sample.shape == (2, 9, 3, 32, 32)
    if tokenizer.fsq is not None:
        ids = tokenizer.tokenize(clip())
        assert ids.shape == (2, 3, 4, 4) and ids.max() < 48
        torch.testing.assert_close(tokenizer.detokenize(ids), tokenizer.decode(latents).sample)


@torch.no_grad()
def test_encoding_is_causal(tokenizer):
    """Encoding the first 1 + 4j frames gives exactly the first 1 + j latent frames of the whole clip,
    and decoding the first latents gives the first frames."""
    video = clip()
    whole = tokenizer.encode(video).latent_dist.mode()
    for j in (0, 1):
        first = tokenizer.encode(video[:, : 1 + 4 * j]).latent_dist.mode()
        torch.testing.assert_close(first, whole[:, : 1 + j], rtol=0, atol=0)
    decoded = tokenizer.decode(whole).sample
    torch.testing.assert_close(tokenizer.decode(whole[:, :2]).sample, decoded[:, :5], rtol=0, atol=0)


@torch.no_grad()
def test_streaming_equals_whole_clip(tokenizer):
    video = clip()
    state: dict = {}
    parts = [tokenizer.encode(video[:, :1], state=state).latent_dist.mode()]
    parts += [tokenizer.encode(video[:, 1 + 4 * j: 5 + 4 * j], state=state).latent_dist.mode() for j in range(2)]
    whole = tokenizer.encode(video).latent_dist.mode()
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=0, atol=0)
    state = {}
    frames = [tokenizer.decode(whole[:, t: t + 1], state=state).sample for t in range(3)]
    assert [f.shape[1] for f in frames] == [1, 4, 4]
    torch.testing.assert_close(torch.cat(frames, dim=1), tokenizer.decode(whole).sample, rtol=0, atol=0)


@torch.no_grad()
def test_bad_input(tokenizer):
    with pytest.warns(UserWarning, match="7 frames do not fit temporal compression 4: padded to 9"):
        out = tokenizer(clip(T=7))
    assert out.sample.shape[1] == 7
    with pytest.raises(ValueError, match="does not fit spatial compression 8: .* e.g. 24x32"):
        tokenizer.encode(torch.zeros(1, 5, 3, 30, 32))
    with pytest.raises(ValueError, match=r"expected video \(B, T, 3, H, W\)"):
        tokenizer.encode(torch.zeros(5, 3, 32, 32))
    if tokenizer.fsq is not None:
        with pytest.raises(ValueError, match=r"\[0, 48\)"):
            tokenizer.detokenize(torch.full((1, 1, 4, 4), 48))
    else:
        with pytest.raises(ValueError, match="needs the discrete"):
            tokenizer.tokenize(clip())


def test_haar_wavelet_is_orthonormal_and_inverts():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = haar_analysis(x, 2)
    assert y.shape == (2, 48, 4, 4)
    torch.testing.assert_close(y.norm(), x.norm())
    torch.testing.assert_close(y[:, 0], x[:, 0].view(2, 4, 4, 4, 4).sum((2, 4)) / 4)  # LL of LL: 4x4 block sums
    torch.testing.assert_close(haar_synthesis(y, 2), x)


def test_config_rejects_compression_it_cannot_build():
    with pytest.raises(ValueError, match="at least 4 channel_multipliers for 8x8 compression with 2 wavelet"):
        CausalVideoTokenizer(channel_multipliers=(1, 2, 2), temporal_compression=8)
    with pytest.raises(ValueError, match=r"wavelet_levels must be in \[0, 3\]"):
        CausalVideoTokenizer(wavelet_levels=4)
    no_wavelet = CausalVideoTokenizer(**SMALL, wavelet_levels=0)
    assert no_wavelet.encode(clip(T=5)).latent_dist.mode().shape == (2, 2, 16, 4, 4)


def test_latent_normalisation_round_trip():
    torch.manual_seed(0)
    model = CausalVideoTokenizer(**SMALL, latents_mean=[0.5] * 16, latents_std=[2.0] * 16).eval()
    raw = CausalVideoTokenizer(**SMALL).eval()
    raw.load_state_dict(model.state_dict())
    with torch.no_grad():
        video = clip(T=5)
        expected = (raw.encode(video).latent_dist.mode() - 0.5) / 2.0
        torch.testing.assert_close(model.encode(video).latent_dist.mode(), expected)
        torch.testing.assert_close(model(video).sample, raw(video).sample)


def test_save_load_and_loss_goes_down(tmp_path):
    torch.manual_seed(0)
    model = CausalVideoTokenizer(**SMALL)
    video = torch.full((1, 5, 3, 32, 32), -0.5)
    for t in range(5):  # a square moving right
        video[0, t, :, 10:18, 4 + 3 * t: 12 + 3 * t] = 0.8
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = (model(video).sample - video).abs().mean().item()
    for _ in range(15):
        opt.zero_grad()
        loss = (model(video).sample - video).abs().mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first
    model.eval().save_pretrained(tmp_path / "tok")
    names = sorted(p.name for p in (tmp_path / "tok").iterdir())
    assert names == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = CausalVideoTokenizer.from_pretrained(tmp_path / "tok")
    with torch.no_grad():
        torch.testing.assert_close(loaded(video).sample, model(video).sample, rtol=0, atol=0)
    (tmp_path / "tok" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        CausalVideoTokenizer.from_pretrained(tmp_path / "tok")


def test_wm_hub_load_dispatches_diffusers_models(tmp_path):
    import json

    import wm_hub

    CausalVideoTokenizer(**SMALL).save_pretrained(tmp_path / "tok")
    assert isinstance(wm_hub.load(tmp_path / "tok"), CausalVideoTokenizer)
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    (tmp_path / "tok" / "config.json").write_text(json.dumps({**config, "_class_name": "os.system"}))
    with pytest.raises(CheckpointError, match="not a wm_hub class"):
        wm_hub.load(tmp_path / "tok")


def test_evaluation_reports_tokenbench_numbers(tmp_path, capsys, monkeypatch):
    from wm_hub.cli import main

    assert main(["data", "make", "physics", "--num-clips", "2", "--frames", "26", "--seed", "1000000",
                 "--out", str(tmp_path / "eval")]) == 0
    torch.manual_seed(0)
    CausalVideoTokenizer(**SMALL).save_pretrained(tmp_path / "tok")
    assert main(["eval", str(tmp_path / "tok"), "--data", str(tmp_path / "eval"), "--count", "2"]) == 0
    out = capsys.readouterr().out
    for name in ("PSNR", "SSIM", "temporal-difference PSNR", "PSNR, out of distribution (platformer)",
                 "PSNR, 25-frame clips"):  # 17-frame clips scored; the 26-frame episodes hold 1 + 6 * 4 frames
        assert name in out
    # the card (as shipped under model_cards/) and the demo
    from huggingface_hub import ModelCard

    cards = tmp_path / "model_cards"
    CausalVideoTokenizer(**SMALL, quantizer="discrete", fsq_levels=(4, 3)).save_pretrained(cards / "dv-tiny")
    notes = tmp_path / "notes.md"
    notes.write_text("Random weights.")
    assert main(["eval", str(cards / "dv-tiny"), "--data", str(tmp_path / "eval"), "--count", "2", "--write-card",
                 "--training-notes", str(notes)]) == 0
    card = ModelCard.load(cards / "dv-tiny" / "README.md")
    assert card.data.pipeline_tag == "feature-extraction" and len(card.data.eval_results) == 5
    assert "dv4x8x8" in card.text and "FSQ-discrete tokens, levels (4, 3) (a codebook of 12)" in card.text
    assert "Random weights." in card.text
    monkeypatch.setenv("WM_HUB_MODEL_CARDS", str(cards))
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert "dv-tiny: reconstructed 17 held-out frames" in capsys.readouterr().out
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "demo" / "dv-tiny.gif", index=None).shape == (17, 256, 512, 3)


def test_compare_script_prints_one_row_per_tokenizer(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    import compare_cosmos_tokenizers

    from wm_hub.cli import main

    assert main(["data", "make", "physics", "--num-clips", "2", "--frames", "34", "--seed", "1000000",
                 "--out", str(tmp_path / "eval")]) == 0
    torch.manual_seed(0)
    CausalVideoTokenizer(**SMALL).save_pretrained(tmp_path / "cv" / "model")
    CausalVideoTokenizer(**{**SMALL, "temporal_compression": 8}, quantizer="discrete",
                         fsq_levels=(4, 3)).save_pretrained(tmp_path / "dv8")
    capsys.readouterr()
    folders = [str(tmp_path / "cv" / "model"), str(tmp_path / "dv8")]
    assert compare_cosmos_tokenizers.main([*folders, "--data", str(tmp_path / "eval"), "--count", "2",
                                           "--out", str(tmp_path / "t.md")]) == 0
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| cv | cv4x8x8 |") and lines[3].startswith("| dv8 | dv8x8x8 |")
    assert lines[0].endswith("| PSNR, whole clips |")
    dv8 = lines[3].strip("| ").split(" | ")
    assert dv8[-1] == dv8[2]  # 33-frame clips are the 8x tokenizer's card clips: its PSNR
    assert capsys.readouterr().out.strip() == "\n".join(lines)
