"""The control fine-tuning scripts on tiny data and tiny base pipelines: camera (every weight) and action (LoRA,
merged into the written folder) runs train, resume and write a Video2World folder that takes the control; an
autoregressive base gives an autoregressive pipeline that takes it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_ar_parts, tiny_world_parts
from wm_hub.data import save_dataset
from wm_hub.envs.camera_scene import intrinsics, look_at, record_camera_clips
from wm_hub.envs.physics import record_physics_clips
from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline, Video2WorldPipeline


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finetune")
    Video2WorldPipeline(**tiny_world_parts(num_layers=1)).save_pretrained(tmp / "base")
    ARVideo2WorldPipeline(**tiny_ar_parts()).save_pretrained(tmp / "ar-base")
    save_dataset(record_camera_clips(2, frames=5), tmp / "camera")
    save_dataset(record_physics_clips(2, frames=5, agent="pusher"), tmp / "action")

    def config(control: str, lora_rank: int, model: str = "dit"):
        cfg = {"base": str(tmp / ("base" if model == "dit" else "ar-base")), "data": {"train": str(tmp / control)},
               "clip_len": 5, "lora_rank": lora_rank,
               "edm": {"p_mean": -1.2, "p_std": 1.2, "caption_dropout": 0.5, "condition_prob": 1.0,
                       "max_condition_frames": 1},
               "ar": {"context_frames": 1, "caption_dropout": 1.0},
               "train": {"output_dir": str(tmp / f"out-{model}-{control}"), "steps": 2, "batch_size": 2,
                         "warmup_steps": 1, "log_every": 1, "save_every": 1}}
        path = tmp / f"{model}-{control}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    return tmp, config


def test_camera_finetuning_trains_every_weight_and_resumes(setup):
    import finetune_cosmos

    tmp, config = setup
    path = config("camera", 0)
    assert finetune_cosmos.main("camera", ["--config", str(path)]) == 0
    assert finetune_cosmos.main("camera", ["--config", str(path), "--resume", "--max-steps", "3"]) == 0
    rows = list(csv.DictReader(open(tmp / "out-dit-camera" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["loss"]) > 0 for r in rows)
    pipe = Video2WorldPipeline.from_pretrained(tmp / "out-dit-camera" / "pipeline")
    base = Video2WorldPipeline.from_pretrained(tmp / "base")
    assert pipe.transformer.config.camera_conditioning and not pipe.transformer.config.action_dim
    assert not torch.equal(pipe.transformer.blocks[0].mlp[0].weight, base.transformer.blocks[0].mlp[0].weight)
    poses = np.stack([look_at(np.array([6.0 - 0.3 * t, 1, 2]), np.zeros(3)) for t in range(5)])
    frames = pipe("", image=np.zeros((64, 64, 3), np.uint8), camera=(intrinsics(64), poses), num_frames=5,
                  num_inference_steps=1).frames
    assert frames.shape == (1, 5, 64, 64, 3)


def test_action_finetuning_with_lora_writes_merged_weights(setup):
    import finetune_cosmos

    tmp, config = setup
    assert finetune_cosmos.main("action", ["--config", str(config("action", 2))]) == 0
    pipe = Video2WorldPipeline.from_pretrained(tmp / "out-dit-action" / "pipeline")
    base = Video2WorldPipeline.from_pretrained(tmp / "base")
    assert pipe.transformer.config.action_dim == 2 and not pipe.transformer.config.camera_conditioning
    weights = pipe.transformer.state_dict()
    assert not any("lora" in k for k in weights)
    # LoRA changed the adapted layers (merged in); layers without adapters kept the base weights
    assert not torch.equal(weights["blocks.0.mlp.0.weight"], base.transformer.state_dict()["blocks.0.mlp.0.weight"])
    assert torch.equal(weights["patch_embed.weight"], base.transformer.state_dict()["patch_embed.weight"])
    assert weights["action_embed.2.weight"].abs().sum() > 0  # the zero-initialised output layer was trained
    frames = pipe("", image=np.zeros((64, 64, 3), np.uint8), actions=np.ones((4, 2)), num_frames=5,
                  num_inference_steps=1).frames
    assert frames.shape == (1, 5, 64, 64, 3)


def test_camera_finetuning_needs_cameras(setup, tmp_path):
    import finetune_cosmos

    tmp, config = setup
    with pytest.raises(ValueError, match=r"no cameras \(intrinsics, camera_pose\): make it with `wm-hub data make cam"):
        finetune_cosmos.main("camera", ["--config", str(config("camera", 0)), "--data", str(tmp / "action"),
                                        "--output-dir", str(tmp_path / "out")])


def test_finetuning_with_another_tokenizer_keeps_it_and_checks_its_latents(setup, tmp_path):
    import finetune_cosmos

    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer

    tmp, config = setup
    torch.manual_seed(1)
    CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, latent_channels=4,
                         latents_mean=(0.5,) * 4, latents_std=(2.0,) * 4).save_pretrained(tmp_path / "same")
    CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2,
                         latent_channels=8).save_pretrained(tmp_path / "wider")
    args = ["--config", str(config("camera", 0)), "--max-steps", "1", "--output-dir", str(tmp_path / "out")]
    assert finetune_cosmos.main("camera", [*args, "--tokenizer", str(tmp_path / "same")]) == 0
    vae = Video2WorldPipeline.from_pretrained(tmp_path / "out" / "pipeline").vae
    assert vae.config.latents_std == [2.0] * 4
    same = CausalVideoTokenizer.from_pretrained(tmp_path / "same").state_dict()
    assert all(torch.equal(w, same[k]) for k, w in vae.state_dict().items())
    with pytest.raises(ValueError, match=r"compression, quantizer, FSQ levels\) \(8, 4, 8"):
        finetune_cosmos.main("camera", [*args, "--tokenizer", str(tmp_path / "wider")])


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_autoregressive_action_finetuning_writes_an_ar_pipeline_that_takes_actions(setup, tmp_path, lora_rank):
    import finetune_cosmos

    tmp, config = setup
    args = ["--config", str(config("action", lora_rank, model="ar")), "--output-dir", str(tmp_path / "out")]
    assert finetune_cosmos.main("action", args) == 0
    assert finetune_cosmos.main("action", [*args, "--resume", "--max-steps", "3"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["perplexity"]) > 1 for r in rows)
    pipe = ARVideo2WorldPipeline.from_pretrained(tmp_path / "out" / "pipeline")
    base = ARVideo2WorldPipeline.from_pretrained(tmp / "ar-base")
    assert pipe.transformer.config.action_dim == 2 and pipe.transformer.config.frames_per_latent == 4
    weights, before = pipe.transformer.state_dict(), base.transformer.state_dict()
    assert not any("lora" in k for k in weights)
    assert weights["action_embed.2.weight"].abs().sum() > 0  # the zero-initialised output layer was trained
    assert not torch.equal(weights["blocks.0.mlp.0.weight"], before["blocks.0.mlp.0.weight"])
    # the frozen text encoder is the base's
    assert all(torch.equal(w, base.text_encoder.state_dict()[k]) for k, w in pipe.text_encoder.state_dict().items())
    frames = pipe(image=np.zeros((64, 64, 3), np.uint8), prompt="", actions=np.ones((4, 2)), num_frames=5).frames
    assert frames.shape == (1, 5, 64, 64, 3)
