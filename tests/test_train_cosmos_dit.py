"""The DiT training script on tiny data and a tiny tokenizer: trains, resumes, writes a pipeline folder
that Text2World and Video2World load."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml

from wm_hub.cli import main as cli
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.pipeline_cosmos import Text2WorldPipeline, Video2WorldPipeline


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dit")
    assert cli(["data", "make", "physics", "--num-clips", "3", "--frames", "9", "--out", str(tmp / "data")]) == 0
    torch.manual_seed(0)
    CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, latent_channels=4,
                         latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4).save_pretrained(tmp / "vae")
    cfg = {
        "vae": str(tmp / "vae"), "data": {"train": str(tmp / "data")}, "clip_len": 9,
        "text": {"max_length": 24, "encoder": {"d_model": 16, "num_layers": 1, "num_heads": 2}},
        "model": {"patch_size": [1, 2, 2], "hidden_size": 24, "num_layers": 1, "num_heads": 2},
        "scheduler": {"sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 1.0},
        "edm": {"p_mean": -1.2, "p_std": 1.2, "caption_dropout": 0.5, "condition_prob": 0.5,
                "max_condition_frames": 1},
        "train": {"output_dir": str(tmp / "out"), "steps": 3, "batch_size": 2, "warmup_steps": 1, "log_every": 1,
                  "save_every": 2},
    }
    path = tmp / "dit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_trains_resumes_and_writes_both_pipelines(config):
    import train_cosmos_dit

    assert train_cosmos_dit.main(["--config", str(config)]) == 0
    out = config.parent / "out"
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["loss"]) > 0 for r in rows)
    assert train_cosmos_dit.main(["--config", str(config), "--resume", "--max-steps", "4"]) == 0
    assert [int(r["step"]) for r in csv.DictReader(open(out / "log.csv"))] == [1, 2, 3, 4]
    assert (out / "pipeline" / "README.md").is_file()
    assert (out / "latents.safetensors").is_file()  # the tokenizer's latents, encoded once for both runs
    for cls in (Text2WorldPipeline, Video2WorldPipeline):
        pipe = cls.from_pretrained(out / "pipeline")
        assert pipe.image_size == 64 and pipe.tokenizer.model_max_length == 24
    frames = Text2WorldPipeline.from_pretrained(out / "pipeline")("a red ball falls", num_frames=5,
                                                                  num_inference_steps=2).frames
    assert frames.shape == (1, 5, 64, 64, 3) and frames.dtype == np.uint8


def test_refuses_a_discrete_tokenizer(config, tmp_path):
    import train_cosmos_dit

    CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, quantizer="discrete",
                         fsq_levels=(4, 3)).save_pretrained(tmp_path / "dv")
    cfg = yaml.safe_load(config.read_text())
    cfg["vae"] = str(tmp_path / "dv")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="not a continuous tokenizer"):
        train_cosmos_dit.main(["--config", str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "o")])
