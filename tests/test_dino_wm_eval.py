"""`wm-hub plan`: success rates over held-out Wall tasks, a GIF, the card."""

from __future__ import annotations

import torch
from huggingface_hub import ModelCard

from wm_hub.cli import main
from wm_hub.models.dino_wm.configuration_dino_wm import DinoWMConfig
from wm_hub.models.dino_wm.evaluation_dino_wm import (
    cost_landscape,
    demo,
    position_probe,
    random_success,
    ridge_r2,
    success_by_kind,
)
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel
from wm_hub.models.dino_wm.planning_dino_wm import PlanResult


def tiny(env_id: str | None = "wm_hub/Wall-v0") -> DinoWMModel:
    torch.manual_seed(0)
    encoder = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 64,
               "patch_size": 16}
    return DinoWMModel(DinoWMConfig(encoder_config=encoder, env_id=env_id, history=2, frame_skip=5, proprio_dim=2,
                                    predictor_layers=1, predictor_heads=2, use_decoder=False))


def test_plan_command_reports_success_rates_writes_a_gif_and_the_card(tmp_path, capsys):
    folder = tmp_path / "dino-wm-tiny"
    tiny().save_pretrained(folder)
    notes = tmp_path / "notes.md"
    notes.write_text("Trained for a test.")
    assert main(["plan", str(folder), "--episodes", "2", "--max-plans", "1", "--iterations", "2", "--samples", "20",
                 "--noise-beta", "2", "--out", str(tmp_path / "gifs"), "--write-card", "--training-notes", str(notes)]
                ) == 0
    printed = capsys.readouterr().out
    assert "MPC-CEM (noise coloured, beta 2) success rate" in printed and "MPC-GD seconds per plan" in printed
    assert (tmp_path / "gifs" / "dino-wm-tiny-cem.gif").stat().st_size > 0
    card = ModelCard.load(folder / "README.md")
    names = [r.metric_name for r in card.data.eval_results]
    assert len(names) == 10 and "DINO-WM paper, MPC-CEM success rate (for reference)" in names
    assert "planning cost vs path distance to the goal: rank correlation (features)" in names
    command = ("wm-hub plan dino-wm-tiny --episodes 2 --planner cem gd --max-plans 1 --iterations 2 --samples 20 "
               "--noise-beta 2.0")
    assert command in card.text and "Trained for a test." in card.text
    assert "(`env.goal_reached`: Whether the agent" in card.text  # the env's own success criterion, in its words
    # the measured settings go into the config: planners made by name for this model start from them
    settings = DinoWMConfig.from_pretrained(folder).planner_settings
    cem = {"iterations": 2, "num_samples": 20, "topk": 2, "noise_beta": 2.0}
    assert settings == {"cem": cem, "gd": {"iterations": 2}}


def test_demo_plans_a_held_out_task_and_writes_the_gif(tmp_path):
    line = demo(tiny(), tmp_path, "dino-wm-tiny", settings={"iterations": 2, "num_samples": 20, "topk": 2})
    assert line.startswith("dino-wm-tiny: MPC-CEM ") and "held-out wm_hub/Wall-v0 task" in line
    assert (tmp_path / "dino-wm-tiny-cem.gif").stat().st_size > 0


def test_random_actions_rarely_cross_the_wall():
    assert random_success(tiny(), episodes=20, steps=50) <= 0.2


def test_success_by_kind_counts_the_tasks_of_each_kind():
    results = [PlanResult(success=s) for s in (True, False, True, True)]
    by_kind = success_by_kind(results, ["walk", "push", "push", None])
    assert by_kind == {"push": (2, 0.5), "walk": (1, 1.0)}
    assert success_by_kind(results, [None] * 4) == {}


def test_plan_needs_an_env(tmp_path, capsys):
    tiny(env_id=None).save_pretrained(tmp_path / "m")
    assert main(["plan", str(tmp_path / "m"), "--episodes", "1"]) == 2
    assert "no env_id" in capsys.readouterr().err


def test_ridge_probe_scores_linear_and_unrelated_targets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 50, generator=g)
    y = x[:, :2] @ torch.tensor([[1.0, -2.0], [0.5, 3.0]]) + 4.0
    assert ridge_r2(x[:100], y[:100], x[100:], y[100:], alpha=1e-4) > 0.99
    noise = torch.randn(200, 2, generator=g)
    assert ridge_r2(x[:100], noise[:100], x[100:], noise[100:]) < 0.1


def test_position_probe_reads_the_agent_position_off_pixels_better_than_an_untrained_encoder():
    features, pixels = position_probe(tiny(), tasks=60)
    assert -1 < features < pixels <= 1 and pixels > 0.2  # an untrained encoder carries little of it


def test_cost_landscape_ranks_by_path_distance():
    """Pixel distances saturate once the agent leaves the goal: they barely rank positions by how far the goal is."""
    features, pixels = cost_landscape(tiny(), tasks=3, grid=8)
    assert -1 <= features <= 1 and abs(pixels) < 0.3
