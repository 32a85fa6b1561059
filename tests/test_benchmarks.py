"""The benchmarks run end to end on tiny models and print their tables (speed targets live in the
tables, not in tests)."""

from __future__ import annotations

import torch
from diffusers import EDMEulerScheduler
from transformers import T5EncoderModel

from benchmarks import bench_cosmos_dit, bench_cosmos_tokenizer


def test_cosmos_tokenizer_table(capsys):
    bench_cosmos_tokenizer.main(["--frames", "5", "--size", "16", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("| variant | mode | encode frames/s")
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("continuous", "whole"), ("continuous", "streaming"), ("discrete", "whole"), ("discrete", "streaming")]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)


def test_cosmos_dit_table(tmp_path, capsys):
    from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
    from wm_hub.models.cosmos.pipeline_cosmos import Text2WorldPipeline
    from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config
    from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel

    torch.manual_seed(0)
    tokenizer = build_caption_tokenizer(["a red ball falls"], model_max_length=64)
    Text2WorldPipeline(
        transformer=WorldTransformer3DModel(in_channels=4, sample_size=8, hidden_size=16, num_layers=1, num_heads=2,
                                            text_dim=16),
        vae=CausalVideoTokenizer(base_channels=8, channel_multipliers=(1, 2, 2, 2), num_heads=2, latent_channels=4,
                                 latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4),
        scheduler=EDMEulerScheduler(sigma_data=1.0),
        text_encoder=T5EncoderModel(caption_encoder_config(tokenizer, d_model=16, num_layers=1, num_heads=2)),
        tokenizer=tokenizer,
    ).save_pretrained(tmp_path / "dit")
    bench_cosmos_dit.main(["--name", str(tmp_path / "dit"), "--clips", "2", "--steps", "3", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("|")[1].strip() for line in lines[3:]] == ["3", "1"]
    assert lines[3].endswith("| +0.00 |")
    bench_cosmos_dit.main(["--name", str(tmp_path / "missing")])
    assert "not shipped here yet" in capsys.readouterr().out


def test_dino_wm_table(tmp_path, capsys):
    from benchmarks import bench_dino_wm
    from wm_hub.models.dino_wm.configuration_dino_wm import DinoWMConfig
    from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel

    torch.manual_seed(0)
    encoder = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 64,
               "patch_size": 16}
    DinoWMModel(DinoWMConfig(encoder_config=encoder, env_id="wm_hub/Wall-v0", history=2, proprio_dim=2,
                             predictor_layers=1, predictor_heads=2, use_decoder=False)).save_pretrained(tmp_path / "m")
    bench_dino_wm.main(["--name", str(tmp_path / "m"), "--plans", "1", "--samples", "10", "--iterations", "2", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("| planner | settings | seconds per plan")
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert [r[0].strip() for r in rows] == ["CEM", "GD"] and all(float(r[2]) > 0 for r in rows)
    assert all(0 < float(r[3].strip(" %")) + float(r[4].strip(" %")) <= 100 for r in rows)


def test_genie_table(tmp_path, capsys):
    from benchmarks import bench_genie
    from wm_hub.models.genie.configuration_genie import DynamicsConfig, GenieTokenizerConfig, LatentActionConfig
    from wm_hub.models.genie.modeling_genie import DynamicsModel, LatentActionModel, VideoTokenizer
    from wm_hub.models.genie.pipeline_genie import GeniePipeline

    torch.manual_seed(0)
    GeniePipeline(
        tokenizer=VideoTokenizer(GenieTokenizerConfig(image_size=64, patch_size=16, hidden_size=16, encoder_layers=1,
                                                      decoder_layers=1, num_heads=2, codebook_size=32, code_dim=8)),
        dynamics=DynamicsModel(DynamicsConfig(vocab_size=32, grid_size=4, num_actions=4, hidden_size=16, num_layers=1,
                                              num_heads=2, maskgit_steps=25)),
        lam=LatentActionModel(LatentActionConfig(image_size=64, patch_size=16, hidden_size=16, encoder_layers=1,
                                                 decoder_layers=1, num_heads=2, num_actions=4, code_dim=8)),
    ).save_pretrained(tmp_path / "genie")
    bench_genie.main(["--name", str(tmp_path / "genie"), "--clips", "1", "--steps", "2", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("| MaskGIT steps | temperature | dtype | frames/s")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[3:]]
    assert [(int(r[0]), float(r[1]), r[2]) for r in rows] == [
        (2, 1.0, "fp32"), (1, 1.0, "fp32"), (2, 0.0, "fp32"), (1, 0.0, "fp32")]
    assert rows[0][-1] == "+0.00" and all(float(r[3]) > 0 for r in rows)


def test_cosmos_ar_table(tmp_path, capsys):
    from benchmarks import bench_cosmos_ar
    from wm_hub.models.cosmos.configuration_cosmos import WorldARConfig
    from wm_hub.models.cosmos.modeling_cosmos import WorldARModel

    torch.manual_seed(0)
    WorldARModel(WorldARConfig(fsq_levels=(4, 3), latent_height=2, latent_width=2, max_latent_frames=3, hidden_size=24,
                               num_hidden_layers=1, num_attention_heads=2)).save_pretrained(tmp_path / "ar")
    bench_cosmos_ar.main(["--name", str(tmp_path / "ar"), "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[3:]]
    assert [(r[0], r[1]) for r in rows] == [("1", "yes"), ("1", "no"), ("2", "yes"), ("2", "no")]
    assert all(float(r[2]) > 0 for r in rows)
    bench_cosmos_ar.main(["--name", str(tmp_path / "missing")])
    assert "not shipped here yet" in capsys.readouterr().out


def test_world_models_table(capsys):
    from benchmarks import bench_world_models

    bench_world_models.main(["--steps", "10", "--episodes", "1", "--popsize", "2", "--dream-batch", "3", "2",
                             "--workers", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("| what | setting | steps/s")
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert [r[0].strip() for r in rows] == ["real env", "dream", "CMA-ES generation, real env"]
    assert all(float(r[2]) > 0 for r in rows)
