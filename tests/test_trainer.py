from __future__ import annotations

import pytest
import torch
from transformers import PretrainedConfig, PreTrainedModel

from wm_hub.trainer import (
    TrainConfig,
    last_logged,
    load_training_state,
    save_training_state,
    supported_mixed_precision,
    write_snapshot_card,
)


def _setup(seed: int, lr: float = 1e-2):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    config = TrainConfig(steps=20, warmup_steps=5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
    return model, optimizer, scheduler, config


def test_training_state_round_trip_is_exact(tmp_path):
    model, optimizer, scheduler, config = _setup(0)
    for _ in range(7):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    save_training_state(tmp_path / "ckpt", model, optimizer, scheduler, 7, config)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["trainer_state.json", "trainer_state.safetensors"]
    expected_next = torch.randn(3)

    model2, optimizer2, scheduler2, _ = _setup(1)
    assert load_training_state(tmp_path / "ckpt", model2, optimizer2, scheduler2) == 7
    assert torch.equal(torch.randn(3), expected_next)  # RNG restored
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = optimizer.state_dict(), optimizer2.state_dict()
    for index in s1["state"]:
        for name, value in s1["state"][index].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][index][name]))
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    # one more identical step from both
    x = torch.randn(16, 4)
    for m, o in ((model, optimizer), (model2, optimizer2)):
        m(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_lr_schedule_warmup_then_cosine():
    config = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert config.lr_factor(0) == pytest.approx(0.1) and config.lr_factor(9) == pytest.approx(1.0)
    assert config.lr_factor(60) == pytest.approx(0.55) and config.lr_factor(110) == pytest.approx(0.1)


def test_lr_schedule_follows_the_time_limit_when_it_is_nearer():
    config = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1, time_limit_minutes=1.0)
    assert config.lr_factor(5, time_progress=0.9) == pytest.approx(0.6)  # warmup is by steps
    assert config.lr_factor(60, time_progress=0.25) == pytest.approx(0.55)  # the steps are further along
    assert config.lr_factor(20, time_progress=0.5) == pytest.approx(0.55)  # the time is
    assert config.lr_factor(20, time_progress=1.5) == pytest.approx(0.1)


def test_train_stops_at_its_time_limit_and_says_how_far_it_got(tmp_path):
    from wm_hub.trainer import train

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = [{"x": torch.randn(4)} for _ in range(32)]
    config = TrainConfig(output_dir=str(tmp_path / "run"), steps=10**6, batch_size=4, warmup_steps=1,
                         log_every=1, save_every=10**6, time_limit_minutes=0.5 / 60)

    def step(m, batch):
        return {"loss": m(batch["x"]).pow(2).mean()}

    train(model, data, step, config)
    assert 0 < config.steps < 10**6
    restored = torch.nn.Linear(4, 1)
    optimizer = torch.optim.AdamW(restored.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
    # the state saved on stopping is that of the last step
    assert load_training_state(tmp_path / "run" / "checkpoint", restored, optimizer, scheduler) == config.steps
    assert torch.equal(restored.weight, model.weight)


def test_train_config_checks():
    with pytest.raises(ValueError, match=r"unknown training settings \['stpes'\]"):
        TrainConfig.from_dict({"stpes": 3})
    assert TrainConfig.from_dict({"mixed_precision": False}).mixed_precision == "no"


def test_portable_state_restores_weights_step_and_schedule(tmp_path):
    model, optimizer, scheduler, config = _setup(0)
    for _ in range(3):
        model(torch.randn(4, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
    save_training_state(tmp_path / "p", model, None, scheduler, 3, config, dtype=torch.float16)
    model2, optimizer2, scheduler2, _ = _setup(1)
    assert load_training_state(tmp_path / "p", model2, optimizer2, scheduler2) == 3
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert b.dtype == torch.float32 and torch.equal(a.half().float(), b)
    assert scheduler2.get_last_lr() == scheduler.get_last_lr() and not optimizer2.state


@pytest.mark.parametrize("portable", [False, True])
def test_resumed_run_keeps_its_own_peak_learning_rate(tmp_path, portable):
    """`--resume --lr X`: the schedule goes on from the saved step, scaled to the new run's peak X."""
    model, optimizer, scheduler, config = _setup(0)
    for _ in range(8):
        model(torch.randn(4, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
    save_training_state(tmp_path / "s", model, None if portable else optimizer, scheduler, 8, config)
    model2, optimizer2, scheduler2, _ = _setup(1, lr=1e-3)
    assert load_training_state(tmp_path / "s", model2, optimizer2, scheduler2) == 8
    expected = 1e-3 * config.lr_factor(8)
    assert scheduler2.get_last_lr() == pytest.approx([expected]) == [scheduler.get_last_lr()[0] / 10]
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(expected)
    optimizer2.step()
    scheduler2.step()
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(1e-3 * config.lr_factor(9))


def test_shipped_training_configs_parse():
    from pathlib import Path

    from wm_hub.trainer import TrainConfig, load_yaml

    # dreamer.yaml holds RL runs (defaults + a section per env), checked in tests/test_train_dreamer.py
    configs = sorted(p for p in (Path(__file__).resolve().parents[1] / "training" / "configs").glob("*.yaml")
                     if p.name != "dreamer.yaml")
    assert configs
    for path in configs:
        config = load_yaml(path)

        def train_sections(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "train" and isinstance(value, dict):
                        yield value
                    else:
                        yield from train_sections(value)

        sections = list(train_sections(config))
        assert sections, f"{path.name} has no train section"
        for section in sections:
            assert TrainConfig.from_dict(section).steps > 0, path.name


class _Tiny(PreTrainedModel):
    config_class = PretrainedConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(4, 1)
        self.post_init()


def test_validation_keeps_the_best_model(tmp_path):
    import csv

    from wm_hub.trainer import read_selection, train

    data = [{"x": torch.randn(4), "y": torch.randn(1)} for _ in range(16)]
    scores, seen = iter([0.1, 0.2, 0.9, 0.4]), {}

    def step_fn(model, batch):
        return {"loss": (model.linear(batch["x"]) - batch["y"]).pow(2).mean()}

    def validate(model):
        assert not model.training and not torch.is_grad_enabled()
        score = next(scores)
        seen[score] = model.linear.weight.detach().clone()
        return {"score": score, "other": 1.0}

    config = TrainConfig(output_dir=str(tmp_path / "run"), steps=6, batch_size=4, warmup_steps=1, log_every=2,
                         save_every=6, validate_every=2, select_metric="score", lr=1e-1)
    calls = []
    model = train(_Tiny(PretrainedConfig()), data, step_fn, config, validate=validate,
                  after_step=lambda m, step: calls.append((type(m).__name__, step)))
    assert calls == [("_Tiny", step) for step in range(1, 7)]
    with open(tmp_path / "run" / "val_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 2, 4, 6] and [float(r["score"]) for r in rows] == [0.1, 0.2, 0.9, 0.4]
    assert read_selection(tmp_path / "run") == {"step": 4, "metrics": {"score": 0.9, "other": 1.0}}
    assert torch.equal(model.linear.weight, seen[0.9]) and not torch.equal(model.linear.weight, seen[0.4])
    with pytest.raises(ValueError, match="needs validate_every"):
        train(_Tiny(PretrainedConfig()), data, step_fn, TrainConfig(select_metric="score"))


def test_last_logged_averages_the_last_rows_up_to_a_step(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,psnr\n" + "".join(f"{s},{s}\n" for s in range(10, 110, 10)))
    assert last_logged(log, "psnr", rows=2) == 95.0
    assert last_logged(log, "psnr", rows=3, until_step=45) == 30.0  # the rows of steps 20, 30, 40
    with pytest.raises(ValueError, match="up to step 5"):
        last_logged(log, "psnr", until_step=5)


def test_snapshot_card_reports_the_logged_metric_and_the_command(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,psnr\n" + "".join(f"{s},{s}\n" for s in range(10, 110, 10)))
    config = TrainConfig(output_dir=str(tmp_path), steps=100, batch_size=4, lr=1e-3, log_every=10)
    common = dict(script="training/train_x.py", metric="psnr", kind="psnr", unit="dB", dataset="wm_hub/x",
                  name="x-snapshot", family="x", pipeline_tag="image-to-video", summary="A snapshot.",
                  usage="print(1)")
    write_snapshot_card(tmp_path / "card", config, argv=["--stage", "1"], label="PSNR", **common)
    card = (tmp_path / "card" / "README.md").read_text()
    assert "train PSNR (last 50 steps) | 80 dB |" in card  # the mean of steps 60..100
    assert "accelerate launch training/train_x.py --stage 1" in card
    assert "100 steps, batch 4 per process, lr 0.001" in card
    # a model kept at step 40: the rows up to it, and the card says so
    write_snapshot_card(tmp_path / "kept", config, argv=[], until_step=40, training="Kept at step 40.", **common)
    card = (tmp_path / "kept" / "README.md").read_text()
    assert "train psnr (last 50 steps up to the kept step 40) | 25 dB |" in card and "Kept at step 40." in card


@pytest.mark.parametrize("native", [True, False])
def test_bf16_falls_back_to_fp32_on_a_cpu_without_bf16_instructions(monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cpu = torch.device("cpu")
    if native:
        assert supported_mixed_precision("bf16", cpu) == "bf16"
    else:
        with pytest.warns(UserWarning, match="no bf16 instructions"):
            assert supported_mixed_precision("bf16", cpu) == "no"
    assert supported_mixed_precision("bf16", torch.device("cuda")) == "bf16"
    assert supported_mixed_precision("fp16", cpu) == "fp16" and supported_mixed_precision("no", cpu) == "no"
