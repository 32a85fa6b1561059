"""DinoWMPlanner: costs from the model's rollouts, plans in bounds, MPC in the Wall env."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wm_hub.envs.wall import WallEnv
from wm_hub.layers.planners import CEMPlanner, GradientPlanner
from wm_hub.models.dino_wm.configuration_dino_wm import DinoWMConfig
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel
from wm_hub.models.dino_wm.planning_dino_wm import DinoWMPlanner, make_planner, model_planner


@pytest.fixture(scope="module")
def model() -> DinoWMModel:
    torch.manual_seed(0)
    encoder = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 64,
               "patch_size": 16}
    return DinoWMModel(DinoWMConfig(encoder_config=encoder, history=2, frame_skip=3, proprio_dim=2,
                                    predictor_layers=1, predictor_heads=2, use_decoder=False)).eval()


@pytest.fixture()
def task():
    env = WallEnv(max_episode_steps=30)
    spec = env.sample_task(0)
    observation, info = env.reset(options={"door_y": spec["door_y"], "start": spec["start"]})
    goal = env.render_at(spec["goal"])
    return env, spec, goal, observation, info


def test_cost_is_the_feature_distance_after_the_rollout(model, task):
    _, spec, goal, observation, info = task
    planner = DinoWMPlanner(model, CEMPlanner(horizon=2, num_samples=8, topk=2, iterations=1), proprio_weight=0.5)
    actions = torch.rand(4, 2, 6) * 2 - 1
    costs = planner.cost(observation, goal, info["proprio"], spec["goal"])(actions)
    frames = lambda image: torch.as_tensor(image).permute(2, 0, 1)[None, None].float() / 127.5 - 1  # noqa: E731
    start, target = model.encode(frames(observation)), model.encode(frames(goal))[0, 0]
    proprio = torch.as_tensor(info["proprio"]).view(1, 1, 2).expand(4, 1, 2)
    features, future = model.rollout(start.expand(4, -1, -1, -1), actions, proprio)
    expected = (features[:, -1] - target).pow(2).mean((1, 2)) + 0.5 * (
        future[:, -1] - torch.as_tensor(spec["goal"], dtype=torch.float32)).pow(2).mean(-1)
    assert costs.shape == (4,) and torch.allclose(costs, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["cem", "gd"])
def test_plans_have_env_action_shape_and_stay_in_bounds(model, task, name):
    _, _, goal, observation, info = task
    settings = {"horizon": 3, "iterations": 2} | ({"num_samples": 16, "topk": 4} if name == "cem" else {})
    planner = DinoWMPlanner(model, make_planner(name, **settings))
    plan = planner.plan(observation, goal, info["proprio"], generator=torch.Generator().manual_seed(0))
    assert plan.shape == (3, 3, 2) and np.abs(plan).max() <= 1.0
    if name == "cem":  # coloured noise would run along the env steps: frame_skip of them per model step
        assert planner.planner.substeps == 3


def test_run_executes_plans_in_the_env(model, task):
    env, spec, goal, observation, info = task
    planner = DinoWMPlanner(model, CEMPlanner(horizon=2, num_samples=8, topk=2, iterations=1), execute=1)
    reached = lambda i: bool(np.linalg.norm(i["proprio"] - spec["goal"]) < 0.08)  # noqa: E731
    result = planner.run(env, observation, info, goal, max_plans=3, is_success=reached,
                         generator=torch.Generator().manual_seed(0))
    assert result.plans == 3 and result.actions.shape == (9, 2) and len(result.frames) == 10
    assert result.success == reached(env._info())
    at_goal = planner.run(env, observation, info, goal, max_plans=3, is_success=lambda i: True)
    assert at_goal.success and at_goal.plans == 0 and at_goal.actions.shape == (0, 2)


def test_planners_made_by_name_start_from_the_settings_the_card_measured(model):
    config = DinoWMConfig(**{**model.config.to_dict(), "planner_settings": {"cem": {"noise_beta": 2.0}}})
    model = DinoWMModel(config)
    planner = DinoWMPlanner(model, "cem").planner
    assert planner.noise_beta == 2.0 and planner.substeps == config.frame_skip
    assert model_planner(model, "cem", {"noise_beta": 0.0, "iterations": 3}).noise_beta == 0.0
    assert DinoWMPlanner(model, "gd").planner == make_planner("gd")  # no settings for gd: DINO-WM's
    with pytest.raises(ValueError, match="expected planner_settings"):
        DinoWMConfig(planner_settings={"mppi": {}})


def test_bad_input(model, task):
    _, _, goal, observation, info = task
    planner = DinoWMPlanner(model, GradientPlanner(horizon=2, iterations=1))
    with pytest.raises(ValueError, match="needs the current proprio"):
        planner.cost(observation, goal)
    with pytest.raises(ValueError, match="goal proprio of size 2"):
        planner.cost(observation, goal, info["proprio"], goal_proprio=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="expected actions"):
        planner.cost(observation, goal, info["proprio"])(torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="unknown planner"):
        make_planner("mppi")
    with pytest.warns(UserWarning, match="goal image of size"):
        planner.cost(observation, goal[:32, :32], info["proprio"])
