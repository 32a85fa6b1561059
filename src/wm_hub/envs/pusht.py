"""PushT (DINO-WM) from the `gym-pusht` package, used as is, with what `wm-hub plan` needs of an env.

`PushTTasks` wraps gym-pusht's `PushTEnv` (pixels rendered at 64x64, the package's own renderer):
- actions are relative, as DINO-WM's PushT data has them: a in [-1, 1]^2 moves the agent's target to its
  position plus `REACH * a` (gym-pusht's action is that absolute target, in its 512x512 board units);
- the observation is the frame `(64, 64, 3)` uint8; `info["proprio"]` is the agent's position / 512 and
  `info["state"]` the full state (agent x, y, block x, y, block angle);
- planning tasks as DINO-WM draws its PushT tasks (start and goal `GOAL_STEPS` steps apart on a held-out
  trajectory of the recording policy): a random start (gym-pusht's own reset distribution) and as goal the
  state that `GOAL_STEPS` steps of `PushTExplorationPolicy` (seeded by the task, half its episodes heading for
  the block) reach from it (`task["actions"]`, replayed from `reset_to_task`, reach it exactly), so every goal
  is reachable, and none is reached at the start; each task says whether its block moved on the way
  ("kind"); success is DINO-WM's criterion (agent and block positions within 20 units, block angle within
  pi/9).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

from wm_hub.envs.navigation import SmoothRandomPolicy

BOARD = 512.0
SIZE = 64
REACH = 25.0  # board units an action of norm 1 moves the agent's target
GOAL_STEPS = 25  # a task's goal is this many exploration steps from its start (DINO-WM: 5 plans x 5 skips)
SUCCESS_POSITION, SUCCESS_ANGLE = 20.0, np.pi / 9


def within_tolerance(state: np.ndarray, goal: np.ndarray) -> bool:
    """DINO-WM's PushT success between two states (agent x, y, block x, y, angle): the 4-D distance of agent
    and block positions under 20 units, the block's angle within pi/9."""
    angle = abs(state[4] - goal[4]) % (2 * np.pi)
    return bool(np.linalg.norm(state[:4] - goal[:4]) < SUCCESS_POSITION
                and min(angle, 2 * np.pi - angle) < SUCCESS_ANGLE)


class PushTTasks(gym.Env):
    """gym-pusht's PushT (`self.pusht`, unchanged) with relative actions, 64x64 frames, proprio and planning
    tasks. An env holding the package's env, not a `gym.Wrapper`: `gym.make(...).unwrapped` keeps these
    methods."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 100) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen
        from gym_pusht.envs import PushTEnv

        self.pusht = PushTEnv(obs_type="pixels_agent_pos", render_mode=render_mode or "rgb_array",
                              observation_width=SIZE, observation_height=SIZE)
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """`options={"state": (agent x, y, block x, y, angle)}` sets the state; otherwise gym-pusht draws it."""
        state = (options or {}).get("state")
        if state is not None and np.asarray(state).shape != (5,):
            raise ValueError(f"expected a PushT state (agent x, y, block x, y, angle), got {state}")
        obs, info = self.pusht.reset(seed=seed, options=None if state is None else {"reset_to_state": state})
        self.steps = 0
        return obs["pixels"], self._info(obs, info)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,):
            raise ValueError(f"expected a 2-D relative action (x, y), got shape {action.shape}")
        target = np.clip(self.pusht.agent.position + REACH * np.clip(action, -1.0, 1.0), 0.0, BOARD)
        obs, reward, terminated, _, info = self.pusht.step(target)
        self.steps += 1
        return obs["pixels"], reward, terminated, self.steps >= self.max_episode_steps, self._info(obs, info)

    def render(self) -> np.ndarray:
        return self.pusht.get_obs()["pixels"]

    @staticmethod
    def _info(obs: dict, info: dict) -> dict[str, Any]:
        state = np.concatenate([info["pos_agent"], info["block_pose"]])
        return {**info, "proprio": (obs["agent_pos"] / BOARD).astype(np.float32), "state": state}

    # -- planning tasks --------------------------------------------------------------------------------
    def sample_task(self, seed: int) -> dict[str, Any]:
        """A start state (drawn as gym-pusht's reset draws it), the state `GOAL_STEPS` recording-policy steps
        on (redrawn while it is within the success tolerance of the start), the policy's actions that reach it,
        and the task's kind: "block moved" when the block ends out of the tolerance of its start pose, else
        "block still"."""
        rng = np.random.default_rng(seed)
        while True:
            start = np.concatenate([rng.integers(50, 450, 2), rng.integers(100, 400, 2), rng.uniform(-np.pi, np.pi, 1)])
            obs, info = self.reset(options={"state": start})
            first = info["state"]
            policy = PushTExplorationPolicy(int(rng.integers(2**31)))
            actions = []
            for _ in range(GOAL_STEPS):
                actions.append(policy(obs, info))
                obs, _, _, _, info = self.step(actions[-1])
            goal = info["state"]
            if not within_tolerance(goal, first):
                break
        still = within_tolerance(np.concatenate([first[:2], goal[2:]]), first)  # the block alone, agent ignored
        return {"start": start, "goal": goal, "goal_proprio": (goal[:2] / BOARD).astype(np.float32),
                "actions": np.stack(actions), "kind": "block still" if still else "block moved"}

    def reset_to_task(self, task: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to a task's start state; returns (observation, info)."""
        return self.reset(options={"state": task["start"]})

    def goal_image(self, task: dict[str, Any]) -> np.ndarray:
        """The frame of the task's goal state (resets the env to it)."""
        return self.reset(options={"state": task["goal"]})[0]

    def goal_reached(self, task: dict[str, Any], info: dict[str, Any]) -> bool:
        """DINO-WM's PushT success: agent and block positions within 20 units, block angle within pi/9."""
        return within_tolerance(np.asarray(info["state"]), np.asarray(task["goal"]))


class PushTExplorationPolicy(SmoothRandomPolicy):
    """The recording policy: a smooth random walk that, in a `push_share` of the episodes, heads for the
    block (with noise) so that pushes are in the data."""

    def __init__(self, seed: int = 0, noise: float = 0.6, push_share: float = 0.5) -> None:
        self.push_share = push_share
        super().__init__(seed, noise)

    def reset(self) -> None:
        """Start an episode: draw whether it heads for the block."""
        super().reset()
        self.to_block = bool(self.rng.random() < self.push_share)

    def __call__(self, obs: np.ndarray | None, info: dict) -> np.ndarray:
        if not self.to_block:
            return super().__call__(obs, info)
        state = np.asarray(info["state"])
        heading = state[2:4] - state[:2]
        noise = self.rng.normal(0, self.noise, size=2)
        self.last = np.clip(heading / max(np.linalg.norm(heading), 1e-6) + 0.5 * noise, -1.0, 1.0)
        return self.last.astype(np.float32)
