"""The World Models training script end to end on CarRacing with tiny parts: collect, V, M, C in the real env and in
the dream, resumption, the assembled agent, its evaluation and pictures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from wm_hub import Controller, WorldModelsAgent
from wm_hub.cli import main as cli_main
from wm_hub.models.world_models.data_world_models import LatentSequenceDataset, load_rollouts

REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path) -> Path:
    config = {
        "env_id": "CarRacing-v3", "env_kwargs": {"max_episode_steps": 40}, "output_dir": str(tmp_path / "out"),
        "collect": {"data": str(tmp_path / "data"), "episodes": 3, "shard_episodes": 2, "seed": 0, "workers": 1,
                    "agent_noise": 0.1},
        "vae": {"model": {"latent_dim": 8, "channels": [8, 8, 16, 16], "frame_crop": [0, 84, 0, 96]},
                "train": {"steps": 4, "batch_size": 8, "lr": 1.0e-3, "warmup_steps": 1, "log_every": 2,
                          "save_every": 2}},
        "mdnrnn": {"seq_len": 10, "model": {"hidden_size": 16, "gaussians": 3},
                   "train": {"steps": 4, "batch_size": 4, "lr": 1.0e-3, "warmup_steps": 1, "log_every": 2,
                             "save_every": 2}},
        "controller": {"popsize": 4, "rollouts": 1, "sigma": 0.1, "generations": 2, "workers": 1, "patience": 10,
                       "step_penalty": 0.1, "eval_every": 1, "eval_episodes": 1},
        "dream": {"popsize": 4, "rollouts": 3, "start_frames": 2, "sigma": 0.1, "generations": 2, "max_steps": 20,
                  "temperature": 1.0, "eval_every": 1, "eval_batches": 2, "real_episodes": 1, "workers": 1},
    }
    path = tmp_path / "wm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_shipped_config_parses():
    config = yaml.safe_load((REPO / "training/configs/world_models_carracing.yaml").read_text())
    assert config["env_id"] == "CarRacing-v3"
    assert {"collect", "vae", "mdnrnn", "controller", "dream"} <= set(config)
    assert config["vae"]["model"]["latent_dim"] == 32 and config["mdnrnn"]["model"]["hidden_size"] == 256


def test_all_stages_resume_and_evaluate(tmp_path, capsys):
    import train_world_models as script

    config = tiny_config(tmp_path)
    run = lambda *a: script.main(["--config", str(config), *a])  # noqa: E731
    out = tmp_path / "out"

    # 1. random rollouts, in shards; collecting again skips the shards that are there
    assert run("--stage", "collect") == 0
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["shard-00000", "shard-00001"]
    episodes = load_rollouts(tmp_path / "data")
    assert len(episodes) == 3 and episodes[0]["frames"].shape == (41, 64, 64, 3)
    assert episodes[0]["frames"].dtype == np.uint8 and episodes[0]["actions"].shape == (40, 3)
    mtime = (tmp_path / "data" / "shard-00000").stat().st_mtime
    assert run("--stage", "collect") == 0 and (tmp_path / "data" / "shard-00000").stat().st_mtime == mtime

    # 2. V and M (M on V's latents), each resumable
    assert run("--stage", "vae") == 0 and run("--stage", "mdnrnn") == 0
    assert (out / "vae" / "model" / "config.json").is_file() and (out / "mdnrnn" / "model").is_dir()
    assert "train squared error per frame" in (out / "vae" / "model" / "README.md").read_text()
    assert run("--stage", "mdnrnn", "--resume", "--max-steps", "6") == 0
    assert [int(r["step"]) for r in csv.DictReader(open(out / "mdnrnn" / "log.csv"))][-1] == 6

    # 3. C by CMA-ES in the real env, then resumed for one more generation
    assert run("--stage", "controller") == 0
    assert [int(r["generation"]) for r in csv.DictReader(open(out / "controller" / "log.csv"))] == [1, 2]
    assert run("--stage", "controller", "--resume", "--generations", "3") == 0
    assert "resumed CMA-ES at generation 2" in capsys.readouterr().out
    assert json.loads((out / "controller" / "es_state" / "state.json").read_text())["generation"] == 3
    assert len(list(csv.DictReader(open(out / "controller" / "eval.csv")))) == 3

    # the iterative procedure: the trained agent records more rollouts (new seeds), V trains on both folders
    assert run("--stage", "collect", "--policy", "agent", "--data", str(tmp_path / "iter1"), "--episodes", "1",
               "--seed", "500") == 0
    assert len(load_rollouts(tmp_path / "data", tmp_path / "iter1")) == 4
    assert run("--stage", "vae", "--data", str(tmp_path / "data"), str(tmp_path / "iter1"), "--resume",
               "--max-steps", "6") == 0
    assert "from 4 episodes" in capsys.readouterr().out

    # 4. C inside the dream, scored in the real env at the end
    assert run("--stage", "dream", "--temperature", "1.2") == 0
    real = json.loads((out / "dream-t1.20" / "real_env.json").read_text())
    assert real["temperature"] == 1.2 and real["episodes"] == 1

    # 5. the agent: both controllers, saved as one Hub folder; it plays and dreams
    assert run("--stage", "assemble", "--dream-temperature", "1.2") == 0
    agent = WorldModelsAgent.from_pretrained(out / "agent")
    assert isinstance(agent.dream_controller, Controller) and agent.env_id == "CarRacing-v3"
    assert agent(np.zeros((96, 96, 3), np.uint8), num_steps=3).frames.shape == (1, 4, 64, 64, 3)


def test_latent_windows_pad_short_episodes():
    encoded = [{"mu": np.zeros((5, 2), np.float32), "logvar": np.zeros((5, 2), np.float32),
                "actions": np.ones((4, 3), np.float32), "rewards": np.ones(4, np.float32),
                "terminated": np.array([0, 0, 0, 1], bool)}]
    item = LatentSequenceDataset(encoded, seq_len=6)[0]
    assert item["latents"].shape == (7, 2) and item["actions"].shape == (6, 3)
    assert item["mask"].tolist() == [1, 1, 1, 1, 0, 0] and item["dones"].tolist() == [0, 0, 0, 1, 0, 0]


def test_evaluate_and_demo_through_the_cli(tmp_path, capsys):
    from tests.test_world_models import tiny_parts
    from wm_hub.models.world_models import evaluation_world_models as evaluation

    vae, mdnrnn, controller = tiny_parts()
    WorldModelsAgent(vae, mdnrnn, controller).save_pretrained(tmp_path / "agent")
    agent = WorldModelsAgent.from_pretrained(tmp_path / "agent")
    summary = evaluation.demo(agent, tmp_path / "demo", "tiny", steps=5)
    assert (tmp_path / "demo" / "tiny-vae.gif").is_file() and (tmp_path / "demo" / "tiny-dream.gif").is_file()
    assert "return" in summary
    assert cli_main(["eval", str(tmp_path / "agent"), "--episodes", "1"]) == 0
    printed = capsys.readouterr().out
    assert "controller trained in the real env" in printed and "random actions" in printed and "PSNR" in printed
