"""CEM and gradient-descent planners, and the MPC loop, on problems with known answers."""

from __future__ import annotations

import pytest
import torch

from wm_hub.layers.planners import CEMPlanner, GradientPlanner, colored_noise, mpc

TARGET = torch.tensor([[0.5, -0.3], [0.9, 0.1], [-0.7, 0.4], [0.0, -0.9], [0.2, 0.6]])


def quadratic(actions: torch.Tensor) -> torch.Tensor:
    return (actions - TARGET).pow(2).sum((1, 2))


@pytest.mark.parametrize("planner", [CEMPlanner(num_samples=200, topk=20, iterations=20),
                                     CEMPlanner(num_samples=200, topk=20, iterations=20, noise_beta=2.0),
                                     GradientPlanner(iterations=60, lr=0.25, action_noise=0.0)])
def test_planners_find_the_minimum(planner):
    plan = planner.plan(quadratic, action_dim=2, generator=torch.Generator().manual_seed(0))
    assert plan.shape == (5, 2) and torch.allclose(plan, TARGET, atol=0.05)


def test_plans_stay_in_bounds_and_are_seeded():
    far = lambda a: (a - 3.0).pow(2).sum((1, 2))  # noqa: E731 - the optimum lies outside the box
    for planner in (CEMPlanner(iterations=5), GradientPlanner(iterations=5, lr=0.5)):
        plan = planner.plan(far, 2, generator=torch.Generator().manual_seed(0))
        assert plan.max() <= 1.0 and plan.min() >= -1.0
        again = planner.plan(far, 2, generator=torch.Generator().manual_seed(0))
        assert torch.equal(plan, again)


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_colored_noise_has_unit_variance_and_is_white_only_at_beta_0(steps):
    generator = torch.Generator().manual_seed(0)
    lag1 = {}
    for beta in (0.0, 2.0):
        noise = colored_noise(20000, steps, 2, beta, generator)
        assert noise.shape == (20000, steps, 2) and abs(noise.var().item() - 1) < 0.05
        lag1[beta] = (noise[:, 1:] * noise[:, :-1]).mean().item() if steps > 1 else 0.0
    assert abs(lag1[0.0]) < 0.02
    if steps == 25:
        assert lag1[2.0] > 0.8  # Brownian-like: neighbouring steps move together


def test_colored_cem_samples_travel_further():
    """One CEM iteration towards a far point (x_{t+1} = x_t + 0.1 a over 4 plan steps of 5 substeps): the elite
    mean of coloured samples gets closer than white noise's, which averages out along the steps."""
    far = lambda a: (0.1 * a.view(len(a), -1, 2).sum(1) - torch.tensor([1.6, 0.0])).norm(dim=-1)  # noqa: E731
    reached = {}
    for beta in (0.0, 2.0):
        planner = CEMPlanner(horizon=4, num_samples=300, topk=30, iterations=1, noise_beta=beta, substeps=5)
        reached[beta] = far(planner.plan(far, 10, generator=torch.Generator().manual_seed(0))[None]).item()
    assert reached[2.0] < 0.7 * reached[0.0]


def test_mpc_drives_a_point_mass_to_its_goal():
    """x_{t+1} = x_t + 0.1 a: plan 5 steps with the exact model, execute 2, re-plan."""
    state, goal = torch.zeros(2), torch.tensor([0.8, -0.6])

    def make_cost():
        start = state.clone()
        return lambda actions: (start + 0.1 * actions.sum(1) - goal).norm(dim=-1)  # (N,)

    def execute_fn(actions: torch.Tensor) -> bool:
        state.add_(0.1 * actions.sum(0))
        return bool((state - goal).norm() < 0.02)

    chunks = mpc(CEMPlanner(num_samples=100, topk=10, iterations=10), make_cost, execute_fn, action_dim=2,
                 max_plans=30, execute=2, generator=torch.Generator().manual_seed(0))
    assert (state - goal).norm() < 0.02 and len(chunks) < 30 and chunks[0].shape == (2, 2)


def test_bad_settings_and_costs_are_errors():
    with pytest.raises(ValueError, match="topk <= num_samples"):
        CEMPlanner(num_samples=10, topk=20)
    with pytest.raises(ValueError, match="noise_beta >= 0"):
        CEMPlanner(noise_beta=-1.0)
    with pytest.raises(ValueError, match="not a multiple of substeps"):
        CEMPlanner(iterations=1, noise_beta=2.0, substeps=3).plan(quadratic, 2)
    with pytest.raises(ValueError, match="one cost per candidate"):
        CEMPlanner(iterations=1).plan(lambda a: a.sum(), 2)
    with pytest.raises(ValueError, match="init of shape"):
        GradientPlanner().plan(quadratic, 2, init=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="execute <= horizon"):
        mpc(CEMPlanner(), lambda: quadratic, lambda a: True, 2, max_plans=1, execute=6)
