"""The DreamerV3 training script end to end on CartPole with a tiny agent, its resumption, and evaluation."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wm_hub.cli import main as cli_main
from wm_hub.hub import shipped_names
from wm_hub.models.dreamer.environment_dreamer import run_episodes
from wm_hub.models.dreamer.evaluation_dreamer import agent_env, evaluate, imagination_frames
from wm_hub.models.dreamer.modeling_dreamer import DreamerAgent

REPO = Path(__file__).resolve().parents[1]
TINY = {"deter": 32, "hidden": 16, "stoch": 4, "classes": 4, "blocks": 4, "units": 16, "bins": 21, "imag_horizon": 3}


def tiny_run(tmp_path: Path, steps: int = 160) -> Path:
    config = {"defaults": {"preset": "size1m", "model": TINY, "train_ratio": 32, "batch_size": 2, "batch_length": 8,
                           "replay_size": 1000, "prefill": 60, "log_every": 40, "save_every": 80, "steps": steps}}
    path = tmp_path / "dreamer.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_resume_and_evaluate(tmp_path, capsys):
    import train_dreamer

    config, out = tiny_run(tmp_path), tmp_path / "run"
    assert train_dreamer.main(["--env", "CartPole-v1", "--config", str(config), "--output-dir", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["env_steps"]) for r in rows] == [80, 120, 160]
    assert int(rows[-1]["updates"]) == (160 - 60) * 32 // 16 and float(rows[-1]["model_loss"]) > 0
    assert len(list(csv.DictReader(open(out / "episodes.csv")))) >= 3
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 160 and state["config"]["train_ratio"] == 32
    agent = DreamerAgent.from_pretrained(out / "model")
    assert agent.config.env_id == "CartPole-v1" and agent.config.deter == 32
    assert (out / "model" / "README.md").is_file()

    # resume: more steps go on from the checkpoint; another configuration is refused with its keys
    assert train_dreamer.main(["--env", "CartPole-v1", "--config", str(config), "--output-dir", str(out),
                               "--resume", "--steps", "200"]) == 0
    assert int(list(csv.DictReader(open(out / "log.csv")))[-1]["env_steps"]) == 200
    assert "resumed from" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"another run configuration \(train_ratio: checkpoint 32, now 64"):
        train_dreamer.main(["--env", "CartPole-v1", "--config", str(config), "--output-dir", str(out), "--resume",
                            "--train-ratio", "64"])

    # evaluation: held-out episodes, the random baseline, the picture and the CLI
    metrics = evaluate(agent, count=2)
    names = [m.name for m in metrics]
    assert "mean return over 2 episodes (sampled actions)" in names and any("random" in n for n in names)
    assert all(m.value >= 0 for m in metrics)
    frames = imagination_frames(agent, context=3, horizon=5)
    assert frames.shape[1:] == (400, 1200, 3) and 4 <= frames.shape[0] <= 8  # CartPole's frames, real | imagined
    assert cli_main(["eval", str(out / "model"), "--episodes", "2"]) == 0
    assert "mean return over 2 episodes (policy mode)" in capsys.readouterr().out


def test_shipped_dreamer_config_parses():
    import argparse

    import train_dreamer

    from wm_hub.models.dreamer.configuration_dreamer import DreamerConfig
    from wm_hub.trainer import load_yaml

    config = load_yaml(REPO / "training" / "configs" / "dreamer.yaml")
    for section in config["envs"]:
        env, _, pixels = section.partition("@")
        args = argparse.Namespace(env=env, pixels=64 if pixels else None, preset=None, steps=None, output_dir=None,
                                  train_ratio=None, envs=None, seed=None)
        run = train_dreamer.resolve_run(config, args)
        assert run.steps > 0 and run.train_ratio > 0
        assert DreamerConfig.from_preset(run.preset, **run.model).imag_horizon == 15


def test_unsupported_env_is_refused(tmp_path):
    import train_dreamer

    with pytest.raises(ValueError, match="unsupported observation space .* supported: observations: Box"):
        train_dreamer.main(["--env", "Blackjack-v1", "--config", str(tiny_run(tmp_path)), "--output-dir",
                            str(tmp_path / "bj")])


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    """The multi-process path: each process acts in its own env; gradients are averaged over gloo."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
           str(REPO / "training" / "train_dreamer.py"), "--env", "CartPole-v1", "--config", str(tiny_run(tmp_path)),
           "--output-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "replay" / "process-1").is_dir()


@pytest.mark.parametrize("name", ["dreamer-cartpole", "dreamer-cartpole-pixels"])
def test_shipped_cartpole_agent_balances(name):
    """The shipped agents (vector observations; 64 x 64 rendered frames) balance the pole to the cap of 500 steps
    (random actions: about 22)."""
    if name not in shipped_names():
        pytest.skip(f"{name} is not shipped")
    agent = DreamerAgent.from_pretrained(name)
    env = agent_env(agent)
    assert agent.config.is_image == name.endswith("pixels")
    returns = [e["return"] for e in run_episodes(agent, env, 2, seed=1_000_000, mode=True)]
    assert min(returns) >= 475, returns
