"""Evaluation of a DINO-WM by planning (`wm-hub plan NAME --episodes 50`).

Held-out tasks are drawn by the env's `sample_task(seed)` for seeds 1000000, 1000001, ... (training data uses
seeds from 0). For each planner (CEM, gradient descent) the success rate of MPC over the tasks (and over each
kind of task, where the env's tasks say their "kind") and the seconds per plan; a random-actions row (as many
env steps as MPC may take) for reference; and the paper's numbers beside ours. Two checks of the frozen
encoder: a linear probe of the agent's position from its patch features, and, in envs that know their
free-path distances, how well the planning cost (the feature distance to the goal image) ranks positions by their
path distance to the goal.
"""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from wm_hub.cards import Metric
from wm_hub.data.clips import frames_to_tensor, write_gif
from wm_hub.metrics import rank_correlation
from wm_hub.models.dino_wm.configuration_dino_wm import DEFAULT_ENCODER
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel
from wm_hub.models.dino_wm.planning_dino_wm import DinoWMPlanner, PlanResult, model_planner

TASK_SEED = 1_000_000
# DINO-WM (Zhou et al. 2024), success rates of MPC with CEM, per env id.
PAPER_CEM = {"wm_hub/Wall-v0": 0.96, "wm_hub/PointMaze-v0": 0.98, "wm_hub/PushT-v0": 0.90}


def make_env(model: DinoWMModel) -> gym.Env:
    """The env the model was trained on (`config.env_id`), with the planning-task methods."""
    import wm_hub.envs  # noqa: F401  (registers wm_hub/...)

    env_id = model.config.env_id
    if env_id is None:
        raise ValueError("this DINO-WM has no env_id in its config: plan with DinoWMPlanner in your own env")
    env = gym.make(env_id).unwrapped
    missing = [m for m in ("sample_task", "reset_to_task", "goal_image", "goal_reached") if not hasattr(env, m)]
    if missing:
        raise ValueError(f"{env_id} cannot be planned in by wm-hub plan: it lacks {missing}")
    return env


def _plan_task(env: gym.Env, agent: DinoWMPlanner, seed: int, max_plans: int) -> tuple[np.ndarray, PlanResult, float]:
    """MPC on the held-out task of `seed` -> (goal image, `PlanResult`, seconds spent)."""
    task = env.sample_task(seed)
    goal = env.goal_image(task)
    observation, info = env.reset_to_task(task)
    begin = time.perf_counter()
    result = agent.run(env, observation, info, goal, max_plans, lambda inf: env.goal_reached(task, inf),
                       goal_proprio=task["goal_proprio"], generator=torch.Generator().manual_seed(seed))
    return goal, result, time.perf_counter() - begin


def plan_tasks(model: DinoWMModel, planner: str, episodes: int, max_plans: int = 10,
               settings: dict | None = None, seed: int = TASK_SEED) -> tuple[float, float, list[PlanResult]]:
    """MPC over `episodes` held-out tasks -> (success rate, seconds per plan, per-task `PlanResult`s)."""
    env = make_env(model)
    agent = DinoWMPlanner(model, model_planner(model, planner, settings))
    results, seconds = [], 0.0
    for i in range(episodes):
        _, result, spent = _plan_task(env, agent, seed + i, max_plans)
        seconds += spent
        results.append(result)
    plans = sum(r.plans for r in results)
    return float(np.mean([r.success for r in results])), seconds / max(plans, 1), results


def success_by_kind(results: list[PlanResult], kinds: list[str | None]) -> dict[str, tuple[int, float]]:
    """{kind: (number of tasks, success rate)} over the tasks that have a kind, kinds sorted."""
    by_kind: dict[str, list[bool]] = {}
    for result, kind in zip(results, kinds, strict=True):
        if kind is not None:
            by_kind.setdefault(kind, []).append(result.success)
    return {kind: (len(wins), float(np.mean(wins))) for kind, wins in sorted(by_kind.items())}


def random_success(model: DinoWMModel, episodes: int, steps: int, seed: int = TASK_SEED) -> float:
    """Success rate of uniformly random actions for `steps` env steps on the same tasks."""
    env = make_env(model)
    rng = np.random.default_rng(seed)
    wins = 0
    for i in range(episodes):
        task = env.sample_task(seed + i)
        _, info = env.reset_to_task(task)
        for _ in range(steps):
            _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
            if env.goal_reached(task, info) or terminated or truncated:
                break
        wins += env.goal_reached(task, info)
    return wins / episodes


def ridge_r2(x_fit: torch.Tensor, y_fit: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
             alpha: float = 0.1) -> float:
    """R² on the test rows `(M, F)` -> `(M, K)` of a ridge regression fit on the fit rows, in dual form
    (features may outnumber rows); `alpha` is relative to the mean squared norm of a centred fit row."""
    x_fit, y_fit, x_test, y_test = (t.double() for t in (x_fit, y_fit, x_test, y_test))
    mean_x, mean_y = x_fit.mean(0), y_fit.mean(0)
    xf, xt = x_fit - mean_x, x_test - mean_x
    ridge = alpha * xf.pow(2).sum(1).mean() * torch.eye(len(xf), dtype=xf.dtype)
    coef = torch.linalg.solve(xf @ xf.T + ridge, y_fit - mean_y)  # (M_fit, K)
    pred = xt @ (xf.T @ coef) + mean_y
    return (1 - (pred - y_test).pow(2).sum() / (y_test - y_test.mean(0)).pow(2).sum()).item()


@torch.no_grad()
def position_probe(model: DinoWMModel, tasks: int = 200, seed: int = TASK_SEED) -> tuple[float, float]:
    """How well a linear map reads the agent's position off the frozen encoder's patch features: R² of a
    ridge probe fit on half of the start and goal frames of `tasks` held-out tasks, scored on the other
    half; and the same probe on raw pixels, for reference. Planning compares patch features, so features
    that do not carry the position leave the planner's cost flat. Returns (features R², pixels R²)."""
    env = make_env(model)
    frames, positions = [], []
    for i in range(tasks):
        task = env.sample_task(seed + i)
        observation, info = env.reset_to_task(task)
        frames += [observation, env.goal_image(task)]
        positions += [np.asarray(info["proprio"])[:2], np.asarray(task["goal_proprio"])[:2]]
    video = frames_to_tensor(np.stack(frames))[:, None]  # (M, 1, C, H, W) in [-1, 1]
    features = model.encode(video.to(model.device)).flatten(1).cpu()  # (M, N*E)
    pixels, y = video.flatten(1), torch.from_numpy(np.stack(positions)).float()
    half = len(y) // 2
    return (ridge_r2(features[:half], y[:half], features[half:], y[half:]),
            ridge_r2(pixels[:half], y[:half], pixels[half:], y[half:]))


@torch.no_grad()
def cost_landscape(model: DinoWMModel, tasks: int = 20, grid: int = 12, seed: int = TASK_SEED) -> tuple[float, float]:
    """How well the planning cost orders states: for each of `tasks` held-out tasks, the agent is placed at
    every free point of a `grid` x `grid` lattice over the room, and the mean squared distance of that frame's
    patch features to the goal image's is rank-correlated (Spearman) with the point's free-path distance to
    the goal (the env's `path_distances`: through the door, around walls). A cost that saturates as soon as
    the agent leaves the goal scores near 0, one that leads the planner along the way near 1. Returns the
    mean over tasks for the features, and for the pixels' squared distance (for reference)."""
    env = make_env(model)
    if not hasattr(env, "path_distances"):
        raise ValueError(f"{model.config.env_id} has no path_distances: its cost landscape cannot be scored")
    lattice = (np.arange(grid) + 0.5) / grid
    scores = []
    for i in range(tasks):
        task = env.sample_task(seed + i)
        env.reset_to_task(task)
        points = [np.array((x, y)) for y in lattice for x in lattice if env.is_free(np.array((x, y)))]
        frames = np.stack([env.render_at(p) for p in points] + [env.goal_image(task)])
        video = frames_to_tensor(frames)[:, None]  # (M + 1, 1, C, H, W) in [-1, 1]
        features = model.encode(video.to(model.device)).cpu()  # (M + 1, 1, N, E)
        distance = torch.from_numpy(env.path_distances(task["goal"], np.stack(points)))
        reachable = torch.isfinite(distance)
        costs = ((features[:-1] - features[-1:]).pow(2).mean((1, 2, 3)),
                 (video[:-1] - video[-1:]).pow(2).mean((1, 2, 3, 4)))
        scores.append([rank_correlation(c[reachable], distance[reachable]) for c in costs])
    return tuple(float(v) for v in np.mean(scores, axis=0))


def evaluate(model: DinoWMModel, episodes: int = 50, planners: tuple[str, ...] = ("cem", "gd"),
             max_plans: int = 10, settings: dict[str, dict] | None = None) -> list[Metric]:
    """The card's numbers: success rate and seconds per plan for each planner (the model's card settings updated by
    `settings[name]`), a random row and the paper's CEM number."""
    dataset = f"{model.config.env_id} tasks (seeds {TASK_SEED}+)"
    settings = {name: (settings or {}).get(name) or {} for name in planners}
    env = make_env(model)
    kinds = [env.sample_task(TASK_SEED + i).get("kind") for i in range(episodes)]  # envs may sort tasks in kinds
    metrics = []
    for name in planners:
        rate, seconds, results = plan_tasks(model, name, episodes, max_plans, settings[name])
        beta = getattr(model_planner(model, name, settings[name]), "noise_beta", 0)
        label = f"MPC-{name.upper()}" + (f" (noise coloured, beta {beta:g})" if beta else "")
        metrics += [Metric(f"{label} success rate", rate, "success_rate", dataset),
                    Metric(f"{label} seconds per plan", seconds, "seconds", dataset, "s")]
        metrics += [Metric(f"{label} success rate, {count} {kind} tasks", share, "success_rate", dataset)
                    for kind, (count, share) in success_by_kind(results, kinds).items()]
    # an MPC episode ends at the goal, at the env's episode length or after max_plans plans
    horizon = max((model_planner(model, name, settings[name]).horizon for name in planners),
                  default=model_planner(model, "cem").horizon)
    steps = getattr(env, "max_episode_steps", None) or max_plans * horizon * model.config.frame_skip
    metrics.append(Metric(f"random actions success rate ({steps} steps)", random_success(model, episodes, steps),
                          "success_rate", dataset))
    probe, pixel_probe = position_probe(model)
    metrics += [Metric("encoder: linear-probe R² of the agent position from the patch features", probe, "r2", dataset),
                Metric("linear-probe R² of the agent position from the pixels (for reference)", pixel_probe, "r2",
                       dataset)]
    if hasattr(env, "path_distances"):
        ranking, pixel_ranking = cost_landscape(model)
        metrics += [Metric("planning cost vs path distance to the goal: rank correlation (features)", ranking,
                           "spearman", dataset),
                    Metric("the same for the pixel distance (for reference)", pixel_ranking, "spearman", dataset)]
    if model.config.env_id in PAPER_CEM:
        metrics.append(Metric("DINO-WM paper, MPC-CEM success rate (for reference)",
                              PAPER_CEM[model.config.env_id], "success_rate", dataset))
    return metrics


def plan_gif(model: DinoWMModel, out_dir: str | Path, name: str, planner: str = "cem", max_plans: int = 10,
             settings: dict | None = None) -> tuple[Path, PlanResult]:
    """Plan the first held-out task and write the executed frames, each beside the goal image, as a GIF;
    returns its path and the episode's `PlanResult`."""
    agent = DinoWMPlanner(model, model_planner(model, planner, settings))
    goal, result, _ = _plan_task(make_env(model), agent, TASK_SEED, max_plans)
    frames = [np.concatenate([frame, goal], axis=1) for frame in result.frames]
    return write_gif(frames, Path(out_dir) / f"{name}-{planner}.gif"), result


def demo(model: DinoWMModel, out_dir: str | Path, name: str, settings: dict | None = None) -> str:
    """MPC-CEM (the settings the model's card measured, updated by `settings`) on the first held-out task, the GIF
    written; returns a one-line summary."""
    path, result = plan_gif(model, out_dir, name, settings=settings)
    outcome = "reached the goal" if result.success else "did not reach the goal"
    return (f"{name}: MPC-CEM {outcome} of a held-out {model.config.env_id} task in {len(result.frames) - 1} env "
            f"steps ({result.plans} plans); executed frames beside the goal -> {path}")


CARD_USAGE = """import gymnasium as gym
import wm_hub.envs  # registers wm_hub/... envs
from wm_hub import DinoWMModel
from wm_hub.models.dino_wm.planning_dino_wm import DinoWMPlanner

model = DinoWMModel.from_pretrained("{name}")
env = gym.make(model.config.env_id).unwrapped
task = env.sample_task(1_000_000)
goal = env.goal_image(task)
observation, info = env.reset_to_task(task)
result = DinoWMPlanner(model, "cem").run(
    env, observation, info, goal, max_plans=10, is_success=lambda i: env.goal_reached(task, i),
    goal_proprio=task["goal_proprio"])
print(result.success, len(result.frames))"""


def write_card(folder: Path, model: DinoWMModel, metrics: list[Metric], command: str, training: str) -> None:
    """Write a DINO-WM checkpoint's model card into `folder`."""
    from wm_hub.cards import write_model_card

    c = model.config
    success = (make_env(model).goal_reached.__doc__ or "the env's own criterion.").splitlines()[0]
    write_model_card(
        folder, name=folder.name, family="dino_wm", pipeline_tag="robotics",
        summary=(f"DINO-WM (Zhou et al. 2024) on {c.env_id}: a world model in the patch-feature space of a frozen "
                 f"Dinov2 encoder ({c.num_patches} patches of {c.embed_dim} per {c.image_size}x{c.image_size} "
                 f"frame), a frame-causal ViT predictor over {c.history} frames ({c.frame_skip} env steps each, "
                 f"actions embedded to {c.action_emb_dim}-D and concatenated to every patch), planned with CEM "
                 "and gradient-descent MPC towards a goal image (each plan executed whole, then re-planned). The "
                 "encoder was pre-trained here, self-supervised (DINO + iBOT) on the env's frames, as "
                 f"`{DEFAULT_ENCODER}` could not be downloaded; it is frozen afterwards."),
        metrics=metrics, command=command, usage=CARD_USAGE.format(name=folder.name),
        dataset=f"wm_hub/dino-wm ({c.env_id})", training=training,
        limitations=("Trained on one simulated env at 64x64 from the trajectories of its recording policy "
                     "(`wm-hub data make`); goals are images of that env. Success is measured in the simulator's "
                     f"state (`env.goal_reached`: {success.strip()})"),
        config=c.to_diff_dict(), tags=["dino-wm", "planning", "mpc", "cem"],
    )
