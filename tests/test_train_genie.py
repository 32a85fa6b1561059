"""The Genie training script end to end on a tiny dataset and tiny models: each stage trains, resumes
and writes a Hub-ready folder; the dynamics stage writes a loadable pipeline."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import wm_hub
from wm_hub.data import save_dataset
from wm_hub.data.recorder import record_episodes
from wm_hub.envs.platformer import ExplorationPolicy, PlatformerEnv

REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp: Path) -> Path:
    data = tmp / "data"
    save_dataset(record_episodes(PlatformerEnv(), 2, policy=ExplorationPolicy(0), max_steps=12, progress=False), data)
    small = {"hidden_size": 16, "encoder_layers": 1, "decoder_layers": 1, "num_heads": 2, "code_dim": 8}
    train = {"steps": 3, "batch_size": 2, "warmup_steps": 1, "log_every": 1, "save_every": 2}
    config = {
        "data": {"train": str(data)},
        "tokenizer": {"clip_len": 2, "model": {**small, "patch_size": 16, "codebook_size": 16},
                      "train": {**train, "output_dir": str(tmp / "tokenizer")}},
        "lam": {"clip_len": 3, "model": {**small, "patch_size": 16, "num_actions": 4},
                "validation": {"data": str(data), "clips": 4},
                "train": {**train, "output_dir": str(tmp / "lam"), "validate_every": 2,
                          "select_metric": "agreement_min"}},
        "dynamics": {"clip_len": 3, "tokenizer": str(tmp / "tokenizer" / "model"), "lam": str(tmp / "lam" / "model"),
                     "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "maskgit_steps": 2},
                     "train": {**train, "output_dir": str(tmp / "dynamics")}},
    }
    path = tmp / "genie.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_all_stages_train_resume_and_write_folders(tmp_path):
    import train_genie

    config = tiny_config(tmp_path)
    for stage in ("tokenizer", "lam", "dynamics"):
        assert train_genie.main(["--stage", stage, "--config", str(config)]) == 0
        out = tmp_path / stage
        assert sorted(p.name for p in (out / "model").iterdir()) == ["README.md", "config.json", "model.safetensors"]
        rows = list(csv.DictReader(open(out / "log.csv")))
        assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["loss"]) > 0 for r in rows)
        assert (out / "checkpoint" / "trainer_state.json").is_file()
    # the LAM was validated at steps 0, 2 and 3 and its card names the kept step
    rows = list(csv.DictReader(open(tmp_path / "lam" / "val_log.csv")))
    assert [int(r["step"]) for r in rows] == [0, 2, 3] and 0 <= float(rows[0]["agreement_min"]) <= 1
    card = (tmp_path / "lam" / "model" / "README.md").read_text()
    assert "Checkpoint kept at step" in card and "up to the kept step" in card
    # --resume continues from the saved step
    assert train_genie.main(["--stage", "lam", "--config", str(config), "--resume", "--max-steps", "4"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "lam" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    # on another machine only the committed portable state is there: --resume goes on from it
    cfg = yaml.safe_load(config.read_text())
    cfg["lam"]["train"]["portable_dir"] = str(tmp_path / "portable-lam")
    config.write_text(yaml.safe_dump(cfg))
    assert train_genie.main(["--stage", "lam", "--config", str(config), "--resume", "--max-steps", "6"]) == 0
    assert (tmp_path / "portable-lam" / "trainer_state.safetensors").stat().st_size < (
        tmp_path / "lam" / "checkpoint" / "trainer_state.safetensors").stat().st_size
    import shutil

    shutil.rmtree(tmp_path / "lam" / "checkpoint")
    assert train_genie.main(["--stage", "lam", "--config", str(config), "--resume", "--max-steps", "7"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "lam" / "log.csv")))
    assert [int(r["step"]) for r in rows][-1] == 7 and len(rows) == 7
    pipe = wm_hub.load(tmp_path / "dynamics" / "pipeline")
    assert pipe(PlatformerEnv().reset(seed=0)[0], actions=[1, 2]).frames.shape == (1, 3, 64, 64, 3)
    # the float16 copy we commit (training/export_fp16.py) is half the size and loads back as float32
    import export_fp16
    from safetensors import safe_open

    assert export_fp16.main([str(tmp_path / "dynamics" / "pipeline"), str(tmp_path / "shipped")]) == 0
    for weights in (tmp_path / "shipped").rglob("*.safetensors"):
        with safe_open(weights, "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    shipped = wm_hub.load(tmp_path / "shipped")
    for part in ("tokenizer", "dynamics", "lam"):
        for a, b in zip(getattr(shipped, part).parameters(), getattr(pipe, part).parameters(), strict=True):
            assert a.dtype == torch.float32 and torch.equal(a, b.half().float())
    # --init fine-tunes a trained tokenizer: its weights are the start, its configuration is kept
    from wm_hub.models.genie.modeling_genie import VideoTokenizer

    trained = str(tmp_path / "tokenizer" / "model")
    before = VideoTokenizer.from_pretrained(trained)
    assert train_genie.main(["--stage", "tokenizer", "--config", str(config), "--init", trained,
                             "--output-dir", str(tmp_path / "finetuned"), "--max-steps", "1"]) == 0
    after = VideoTokenizer.from_pretrained(tmp_path / "finetuned" / "model")
    assert after.config.to_diff_dict() == before.config.to_diff_dict()
    moved = max((a - b).abs().max().item() for a, b in zip(after.parameters(), before.parameters(), strict=True))
    assert 0 < moved < 0.05  # one small step from the trained weights, not a fresh start
    # the dynamics model fine-tunes against a retrained LAM; one that does not fit the LAM is refused
    from wm_hub.models.genie.configuration_genie import DynamicsConfig
    from wm_hub.models.genie.modeling_genie import DynamicsModel

    # and takes the config's training knobs, keeping the --init model's architecture
    cfg = yaml.safe_load(config.read_text())
    cfg["dynamics"]["model"].update(clean_context_prob=0.5, changed_token_weight=3.0, hidden_size=64)
    config.write_text(yaml.safe_dump(cfg))
    assert train_genie.main(["--stage", "dynamics", "--config", str(config), "--init",
                             str(tmp_path / "dynamics" / "model"), "--output-dir", str(tmp_path / "dyn-ft"),
                             "--max-steps", "1"]) == 0
    assert (tmp_path / "dyn-ft" / "pipeline" / "model_index.json").is_file()
    tuned = DynamicsConfig.from_pretrained(tmp_path / "dyn-ft" / "model")
    assert (tuned.clean_context_prob, tuned.changed_token_weight) == (0.5, 3.0)
    assert tuned.hidden_size == DynamicsConfig.from_pretrained(tmp_path / "dynamics" / "model").hidden_size
    assert "changed_accuracy" in open(tmp_path / "dyn-ft" / "log.csv").readline()
    misfit = DynamicsConfig.from_pretrained(tmp_path / "dynamics" / "model", num_actions=3)
    DynamicsModel(misfit).save_pretrained(tmp_path / "misfit")
    with pytest.raises(SystemExit, match="2"):
        train_genie.main(["--stage", "dynamics", "--config", str(config), "--init", str(tmp_path / "misfit")])


def test_lam_selection_metric_refuses_a_collapsed_codebook(monkeypatch):
    """A LAM that maps every action to one code agrees trivially, and one whose jump shares noop's code
    cannot be told to jump; selection scores both 0."""
    from collections import Counter

    import train_genie

    from wm_hub.envs.platformer import ACTION_NAMES

    noop, left, right, jump = (ACTION_NAMES.index(a) for a in ("noop", "left", "right", "jump"))
    distinct = {noop: Counter({0: 8, 5: 2}), left: Counter({1: 9, 2: 1}), right: Counter({2: 7, 1: 3}),
                jump: Counter({5: 8, 0: 2})}
    collapsed = {noop: Counter({0: 10}), left: Counter({0: 10}), right: Counter({0: 9, 1: 1}), jump: Counter({0: 10})}
    jump_as_noop = {**distinct, jump: Counter({0: 9, 5: 1})}  # jump has no code of its own: it cannot be asked for
    for counts, expected in ((distinct, 0.7), (collapsed, 0.0), (jump_as_noop, 0.0)):
        monkeypatch.setattr(train_genie, "latent_action_counts", lambda model, data, count, c=counts: c)
        scores = train_genie.make_lam_validation("unused", 4)(None)
        assert scores["agreement_min"] == pytest.approx(expected)
        assert scores["agreement_right"] == pytest.approx(max(counts[right].values()) / 10)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    """The multi-process path users take to many GPUs, here with gloo on 2 CPU processes."""
    config = tiny_config(tmp_path)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
           str(REPO / "training" / "train_genie.py"), "--stage", "tokenizer", "--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "tokenizer" / "model" / "model.safetensors").is_file()
