"""The AR training script on tiny data and a tiny FSQ tokenizer: three stages, resume, a pipeline folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from wm_hub.cli import main as cli
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.modeling_cosmos import WorldARModel
from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ar")
    assert cli(["data", "make", "physics", "--num-clips", "3", "--frames", "9", "--out", str(tmp / "data")]) == 0
    torch.manual_seed(0)
    CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, quantizer="discrete",
                         fsq_levels=(4, 3)).save_pretrained(tmp / "vae")
    train = {"steps": 2, "batch_size": 2, "warmup_steps": 1, "log_every": 1, "save_every": 2}
    cfg = {
        "vae": str(tmp / "vae"), "data": {"train": str(tmp / "data")}, "image_size": 64, "max_latent_frames": 3,
        "token_cache": str(tmp / "tokens"),
        "model": {"hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2},
        "text": {"max_length": 24, "encoder": {"d_model": 16, "num_layers": 1, "num_heads": 2}},
        "stage1": {"clip_len": 5, "start_stride": 2, "context_frames": 1,
                   "train": {**train, "output_dir": str(tmp / "s1")}},
        "stage1.1": {"init": str(tmp / "s1" / "model"), "clip_len": 9, "context_frames": 1,
                     "train": {**train, "output_dir": str(tmp / "s11")}},
        "stage2": {"init": str(tmp / "s11" / "model"), "clip_len": 9, "context_frames": 1, "caption_dropout": 0.5,
                   "train": {**train, "output_dir": str(tmp / "s2")}},
    }
    path = tmp / "ar.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp


def test_three_stages_resume_and_write_a_pipeline(config):
    import train_cosmos_ar

    path, tmp = config
    for stage in ("1", "1.1", "2"):
        assert train_cosmos_ar.main(["--config", str(path), "--stage", stage]) == 0
    assert train_cosmos_ar.main(["--config", str(path), "--stage", "2", "--resume", "--max-steps", "3"]) == 0
    # tokenized once per clip length and stride: stage 1's windows 2 steps apart, then the whole clips of 1.1 and 2
    assert sorted(f.name for f in (tmp / "tokens").iterdir()) == ["clips5-stride2.safetensors",
                                                                 "clips9-stride1.safetensors"]
    stage11 = WorldARModel.from_pretrained(tmp / "s11" / "model")
    assert stage11.config.cross_attention_dim is None and stage11.config.max_latent_frames == 3
    pipe = ARVideo2WorldPipeline.from_pretrained(tmp / "s2" / "pipeline")
    assert pipe.transformer.config.cross_attention_dim == 16
    frames = pipe(image=torch.rand(1, 3, 64, 64) * 2 - 1, prompt="a red ball falls", num_frames=9,
                  generator=torch.Generator().manual_seed(0)).frames
    assert frames.shape == (1, 9, 64, 64, 3)


def test_stage_2_starts_as_the_stage_11_model(config):
    """Zero-initialised cross-attention: before training, text changes nothing."""
    import train_cosmos_ar

    path, tmp = config
    train_cosmos_ar.main(["--config", str(path), "--stage", "1"])
    train_cosmos_ar.main(["--config", str(path), "--stage", "1.1"])
    previous = WorldARModel.from_pretrained(tmp / "s11" / "model").eval()
    cfg = yaml.safe_load(path.read_text())
    vae = CausalVideoTokenizer.from_pretrained(tmp / "vae")
    model = train_cosmos_ar.build_model(cfg, "2", vae, text_dim=16).eval()
    ids = torch.randint(0, 12, (2, 16))
    with torch.no_grad():
        expected = previous(ids, use_cache=False).logits
        got = model(ids, encoder_hidden_states=torch.randn(2, 4, 16), use_cache=False).logits
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="needs the discrete"):
        CausalVideoTokenizer(base_channels=8, num_heads=2).save_pretrained(tmp / "cv")
        train_cosmos_ar.main(["--config", str(_with_vae(path, tmp / "cv")), "--stage", "1"])


def _with_vae(path: Path, vae: Path) -> Path:
    cfg = yaml.safe_load(path.read_text())
    cfg["vae"] = str(vae)
    out = path.with_name("continuous.yaml")
    out.write_text(yaml.safe_dump(cfg))
    return out
