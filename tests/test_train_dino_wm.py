"""The DINO-WM training script end to end on a tiny Wall dataset and tiny models."""

from __future__ import annotations

import csv

import torch
import yaml
from transformers import AutoModel

from wm_hub.data import record_episodes, save_dataset
from wm_hub.envs.wall import WallEnv, WallExplorationPolicy
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel


def test_encoder_then_predictor(tmp_path):
    import train_dino_wm

    data = tmp_path / "data"
    save_dataset(record_episodes(WallEnv(max_episode_steps=24), 2, policy=WallExplorationPolicy(0),
                                 info_keys=("proprio",), progress=False), data)
    train = {"steps": 3, "batch_size": 4, "warmup_steps": 1, "log_every": 1, "save_every": 3}
    config = {
        "data": {"train": str(data)},
        "encoder": {"model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 64,
                              "patch_size": 16},
                    "ssl": {"num_prototypes": 32, "head_hidden": 32, "head_bottleneck": 16, "local_crops": 2},
                    "teacher_momentum": [0.9, 1.0], "train": {**train, "output_dir": str(tmp_path / "enc")}},
        "predictor": {"encoder": str(tmp_path / "enc" / "model"), "clip_frames": 4,
                      "model": {"history": 2, "frame_skip": 3, "action_dim": 2, "proprio_dim": 2,
                                "predictor_layers": 1, "predictor_heads": 2, "decoder_channels": 8},
                      "train": {**train, "output_dir": str(tmp_path / "pred")}},
        "decoder": {"model": str(tmp_path / "pred" / "model"), "train": {**train, "output_dir": str(tmp_path / "dec")}},
    }
    path = tmp_path / "wall.yaml"
    path.write_text(yaml.safe_dump(config))
    assert train_dino_wm.main(["--stage", "encoder", "--config", str(path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "enc" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["ibot_loss"]) > 0 for r in rows)
    encoder = AutoModel.from_pretrained(tmp_path / "enc" / "model")
    assert train_dino_wm.main(["--stage", "predictor", "--config", str(path)]) == 0
    model = DinoWMModel.from_pretrained(tmp_path / "pred" / "model")
    for a, b in zip(model.encoder.parameters(), encoder.parameters(), strict=True):
        assert torch.equal(a, b)  # the pre-trained encoder, frozen through the predictor stage
    assert (tmp_path / "pred" / "model" / "README.md").is_file()
    assert (tmp_path / "pred" / "features.safetensors").is_file()  # the clips, encoded once
    assert train_dino_wm.main(["--stage", "predictor", "--config", str(path), "--resume", "--max-steps", "4"]) == 0
    model = DinoWMModel.from_pretrained(tmp_path / "pred" / "model")
    assert train_dino_wm.main(["--stage", "decoder", "--config", str(path)]) == 0
    decoded = DinoWMModel.from_pretrained(tmp_path / "dec" / "model")
    for (name, a), b in zip(model.named_parameters(), decoded.parameters(), strict=True):
        assert torch.equal(a, b) != name.startswith("decoder."), name  # only the decoder learns
    # with the slowness term, the encoder stage trains on sequences of frames
    config["encoder"]["ssl"].update(slowness_weight=1.0, slowness_frames=3, slowness_gap=2)
    config["encoder"]["train"]["output_dir"] = str(tmp_path / "enc-slow")
    path.write_text(yaml.safe_dump(config))
    assert train_dino_wm.main(["--stage", "encoder", "--config", str(path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "enc-slow" / "log.csv")))
    assert all(float(r["invariance"]) > 0 and float(r["slowness_loss"]) > 0 for r in rows)
