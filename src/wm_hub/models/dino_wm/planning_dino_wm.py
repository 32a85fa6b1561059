"""Goal-reaching with DINO-WM: model predictive control in the frozen encoder's patch-feature space.

The cost of a candidate action sequence is the mean squared distance between the patch features the
model predicts after the sequence and the goal image's features (plus `proprio_weight` times the
proprio distance, where the model and the task have proprioception). `DinoWMPlanner.run` plans with CEM
or gradient descent (`wm_hub.layers.planners`), executes the first `execute` model steps in the env
(`frame_skip` env steps each; by default the whole plan, as DINO-WM's MPC does: a receding horizon as long as
the plan), and re-plans from the new observation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from wm_hub.layers.planners import PLANNERS, CEMPlanner, CostFn, GradientPlanner, mpc
from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel
from wm_hub.pipeline_utils import ImageInput, preprocess_images

__all__ = ["DinoWMPlanner", "PlanResult", "make_planner", "model_planner", "planner_settings"]


def make_planner(name: str, **settings) -> CEMPlanner | GradientPlanner:
    """`"cem"` or `"gd"` with its settings (defaults: DINO-WM's)."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; expected one of {sorted(PLANNERS)}")
    return PLANNERS[name](**settings)


def planner_settings(model: DinoWMModel, name: str, settings: dict | None = None) -> dict:
    """The settings the model's card measured for planner `name` (`config.planner_settings[name]`), updated by
    `settings`."""
    return {**model.config.planner_settings.get(name, {}), **(settings or {})}


def model_planner(model: DinoWMModel, name: str, settings: dict | None = None) -> CEMPlanner | GradientPlanner:
    """Planner `name` with `planner_settings(model, name, settings)`."""
    return make_planner(name, **planner_settings(model, name, settings))


@dataclass
class PlanResult:
    """One goal-reaching episode: whether it ended at the goal, the frames seen (uint8 `(H, W, 3)`),
    the executed env actions `(steps, action_dim)` and how many plans were made."""

    success: bool
    frames: list[np.ndarray] = field(default_factory=list)
    actions: np.ndarray | None = None
    plans: int = 0


class DinoWMPlanner:
    """MPC with a `DinoWMModel` in a gymnasium env whose observations are frames: `planner` is a planner or a name
    (`model_planner`: with the settings the model's card measured); `execute` model steps of each plan (None: all
    of them) run before re-planning; `proprio_weight` weighs the proprio distance in the cost
    (1, DINO-WM's Wall setting)."""

    def __init__(self, model: DinoWMModel, planner: CEMPlanner | GradientPlanner | str = "cem",
                 execute: int | None = None, proprio_weight: float = 1.0) -> None:
        self.model = model.eval()
        planner = model_planner(model, planner) if isinstance(planner, str) else planner
        if isinstance(planner, CEMPlanner):  # coloured CEM noise runs along env steps: frame_skip per model step
            planner = replace(planner, substeps=model.config.frame_skip)
        self.planner = planner
        self.execute = self.planner.horizon if execute is None else execute
        self.proprio_weight = proprio_weight
        config = model.config
        self.step_size = config.frame_skip * config.action_dim  # one model step's actions

    def _features(self, image: ImageInput, what: str) -> Tensor:
        frames = preprocess_images(image, self.model.config.image_size, what)[:1]  # (1, C, H, W)
        return self.model.encode(frames[:, None].to(self.model.device))  # (1, 1, N, E)

    def _proprio(self, proprio, what: str) -> Tensor | None:
        if proprio is None or not self.model.config.proprio_dim:
            return None
        value = torch.as_tensor(np.asarray(proprio, dtype=np.float32)).reshape(-1)
        if value.numel() != self.model.config.proprio_dim:
            raise ValueError(f"expected {what} of size {self.model.config.proprio_dim}, got {value.numel()}")
        return value.to(self.model.device)

    def cost(self, observation: ImageInput, goal: ImageInput, proprio=None, goal_proprio=None) -> CostFn:
        """The cost of action sequences `(M, horizon, frame_skip * action_dim)` -> `(M,)` from this
        observation to this goal."""
        start, target = self._features(observation, "observation"), self._features(goal, "goal image")[0, 0]
        start_proprio = self._proprio(proprio, "proprio")
        if self.model.config.proprio_dim and start_proprio is None:
            raise ValueError(f"this model needs the current proprio (size {self.model.config.proprio_dim})")
        target_proprio = self._proprio(goal_proprio, "goal proprio")

        def cost_fn(actions: Tensor) -> Tensor:
            if actions.shape[-1] != self.step_size:
                raise ValueError(f"expected actions (..., {self.step_size}), got {tuple(actions.shape)}")
            M = actions.shape[0]
            props = start_proprio.expand(M, 1, -1) if start_proprio is not None else None
            features, future = self.model.rollout(start.expand(M, -1, -1, -1), actions.to(start.device), props)
            cost = (features[:, -1] - target).pow(2).mean((1, 2))
            if target_proprio is not None and future is not None:
                cost = cost + self.proprio_weight * (future[:, -1] - target_proprio).pow(2).mean(-1)
            return cost.cpu()

        return cost_fn

    def plan(self, observation: ImageInput, goal: ImageInput, proprio=None, goal_proprio=None,
             generator: torch.Generator | None = None) -> np.ndarray:
        """One plan: env actions `(horizon, frame_skip, action_dim)`."""
        actions = self.planner.plan(self.cost(observation, goal, proprio, goal_proprio), self.step_size, generator)
        return actions.view(actions.shape[0], self.model.config.frame_skip, -1).numpy()

    def run(self, env: gym.Env, observation: np.ndarray, info: dict, goal: ImageInput, max_plans: int,
            is_success: Callable[[dict], bool], goal_proprio=None, generator: torch.Generator | None = None
            ) -> PlanResult:
        """Drive `env` (already reset: `observation`, `info`) towards `goal` with MPC until `is_success(info)`
        or `max_plans` plans; `info["proprio"]` is the proprio where the model uses it."""
        result = PlanResult(success=is_success(info), frames=[observation])
        state = {"observation": observation, "info": info}
        executed: list[np.ndarray] = []

        def make_cost() -> CostFn:
            return self.cost(state["observation"], goal, state["info"].get("proprio"), goal_proprio)

        def execute_fn(chunk: Tensor) -> bool:
            for env_action in chunk.view(-1, self.model.config.action_dim).numpy():
                state["observation"], _, terminated, truncated, state["info"] = env.step(env_action)
                result.frames.append(state["observation"])
                executed.append(env_action)
                if is_success(state["info"]) or terminated or truncated:
                    return True
            return False

        if not result.success:
            chunks = mpc(self.planner, make_cost, execute_fn, self.step_size, max_plans, self.execute, generator)
            result.plans = len(chunks)
            result.success = is_success(state["info"])
        result.actions = np.asarray(executed, dtype=np.float32).reshape(-1, self.model.config.action_dim)
        return result
