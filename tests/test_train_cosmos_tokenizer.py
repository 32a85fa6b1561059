"""The Cosmos tokenizer training script on tiny data: both stages, both variants, Hub-ready folders."""

from __future__ import annotations

import pytest
import torch
import yaml

from wm_hub.cli import main as cli
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cosmos")
    assert cli(["data", "make", "physics", "--num-clips", "2", "--frames", "6", "--out", str(tmp / "data")]) == 0
    model = {"base_channels": 8, "channel_multipliers": [1, 2, 2, 2], "num_heads": 2}
    train = {"steps": 2, "batch_size": 1, "warmup_steps": 1, "log_every": 1, "save_every": 2}
    cfg = {"data": {"train": str(tmp / "data")}}
    for variant in ("continuous", "discrete"):
        cfg[variant] = {
            "latent_groups": 1, "model": {**model, **({"fsq_levels": [4, 3]} if variant == "discrete" else {})},
            "stage1": {"train": {**train, "output_dir": str(tmp / "{name}" / "s1")}},
            "stage2": {"init": str(tmp / "{name}" / "s1" / "model"), "loss_weights": {"temporal": 1.0, "gram": 0.5},
                       "train": {**train, "output_dir": str(tmp / "{name}" / "s2")}},
        }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("variant", ["continuous", "discrete"])
def test_two_stages_write_models(config, variant):
    import train_cosmos_tokenizer

    for stage in ("1", "2"):
        assert train_cosmos_tokenizer.main(["--variant", variant, "--stage", stage, "--config", str(config)]) == 0
    folder = config.parent / f"{variant[0]}v4x8x8" / "s2" / "model"
    model = CausalVideoTokenizer.from_pretrained(folder)
    assert model.config.quantizer == variant
    if variant == "continuous":
        assert len(model.config.latents_mean) == 16 and min(model.config.latents_std) > 0
    assert (folder / "README.md").is_file()


def test_compression_flag_names_the_run_and_checks_stage_one(config):
    import train_cosmos_tokenizer

    assert train_cosmos_tokenizer.main(["--variant", "discrete", "--stage", "1", "--config", str(config),
                                        "--compression", "2x8x8", "--max-steps", "1"]) == 0
    model = CausalVideoTokenizer.from_pretrained(config.parent / "dv2x8x8" / "s1" / "model")
    assert (model.config.temporal_compression, model.config.spatial_compression) == (2, 8)
    with pytest.raises(SystemExit):
        train_cosmos_tokenizer.main(["--variant", "discrete", "--stage", "1", "--compression", "4x8x4"])
    (config.parent / "dv1x8x8" / "s1").mkdir(parents=True)  # a stage-1 model of other factors
    model.save_pretrained(config.parent / "dv1x8x8" / "s1" / "model")
    with pytest.raises(ValueError, match=r"a discrete tokenizer compressing \(2, 8\), expected discrete \(1, 8\)"):
        train_cosmos_tokenizer.main(["--variant", "discrete", "--stage", "2", "--config", str(config),
                                     "--compression", "1x8x8"])
    # --init continues a trained tokenizer (here the 2x8x8 one), and refuses another variant
    trained = config.parent / "dv2x8x8" / "s1" / "model"
    assert train_cosmos_tokenizer.main(["--variant", "discrete", "--stage", "1", "--config", str(config),
                                        "--compression", "2x8x8", "--max-steps", "1", "--output-dir",
                                        str(config.parent / "again"), "--init", str(trained)]) == 0
    with pytest.raises(ValueError, match="expected continuous"):
        train_cosmos_tokenizer.main(["--variant", "continuous", "--stage", "1", "--config", str(config),
                                     "--compression", "2x8x8", "--init", str(trained)])


def test_losses():
    from train_cosmos_tokenizer import gram_loss, temporal_loss

    video = torch.rand(1, 3, 3, 16, 16)
    assert temporal_loss(video, video) == 0 and gram_loss(video, video) == 0
    assert temporal_loss(video, video + 0.1) < 1e-6  # a constant shift keeps the motion
    assert gram_loss(video * 0.5, video) > 0
