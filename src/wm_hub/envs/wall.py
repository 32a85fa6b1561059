"""Wall (DINO-WM): a point agent in a square room split by a vertical wall with one door.

The room is the unit square; the wall stands at x = 0.5 and is `WALL_HALF_WIDTH * 2` thick, with a door
of height `2 * DOOR_HALF_HEIGHT` whose centre height is drawn per episode. The action is a 2-D velocity
in [-1, 1]^2 (x `SPEED` room units per step); the agent stops at the walls and passes only through the
door. Observations are 64x64 RGB frames; `info["proprio"]` is the agent's (x, y) position and
`info["door_y"]` the door's height.

Planning tasks (`sample_task`) put the start and the goal on opposite sides of the wall, so that every
plan has to find the door; `reset_to_task`, `goal_image` and `goal_reached` are what a planner's
evaluation needs (the same three methods make any env plannable by `wm-hub plan`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

SIZE = 64
SPEED = 0.05
AGENT_RADIUS = 0.04
WALL_X, WALL_HALF_WIDTH = 0.5, 0.03
DOOR_HALF_HEIGHT = 0.1
DOOR_RANGE = (0.25, 0.75)  # the door's centre height is drawn uniformly from this range
SUCCESS_RADIUS = 0.08  # a plan succeeds when the agent ends this close to the goal position
FLOOR, WALL, AGENT = (236, 232, 220), (60, 64, 72), (220, 50, 40)


def _collides(xy: np.ndarray, door_y: float) -> bool:
    """Does an agent centred at `xy` overlap the wall (outside the door)?"""
    x, y = float(xy[0]), float(xy[1])
    if abs(x - WALL_X) >= WALL_HALF_WIDTH + AGENT_RADIUS:
        return False
    return not (door_y - DOOR_HALF_HEIGHT + AGENT_RADIUS <= y <= door_y + DOOR_HALF_HEIGHT - AGENT_RADIUS)


class WallEnv(gym.Env):
    """The Wall environment; `reset(options={"start": (x, y), "door_y": d})` fixes the layout."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 100) -> None:
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        centres = (np.arange(SIZE) + 0.5) / SIZE
        self._grid_x, self._grid_y = np.meshgrid(centres, centres)  # (H, W) room coordinates of pixels

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        self.door_y = float(options.get("door_y", self.np_random.uniform(*DOOR_RANGE)))
        if not DOOR_RANGE[0] <= self.door_y <= DOOR_RANGE[1]:
            raise ValueError(f"door_y should lie in {DOOR_RANGE}, got {self.door_y}")
        start = options.get("start")
        self.pos = self._free_position() if start is None else np.asarray(start, dtype=np.float64)
        if self.pos.shape != (2,) or _collides(self.pos, self.door_y) or not self._inside(self.pos):
            raise ValueError(f"start {start} is not a free position of the room (x, y in the unit square, "
                             f"off the wall)")
        self.steps = 0
        return self.render_at(self.pos), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,):
            raise ValueError(f"expected a 2-D action (vx, vy), got shape {action.shape}")
        move = np.clip(action, -1.0, 1.0) * SPEED
        # Try the whole move, then each axis alone (sliding along a wall), else stay.
        for candidate in (self.pos + move, self.pos + move * (1, 0), self.pos + move * (0, 1)):
            candidate = np.clip(candidate, AGENT_RADIUS, 1 - AGENT_RADIUS)
            if not _collides(candidate, self.door_y):
                self.pos = candidate
                break
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        return self.render_at(self.pos), 0.0, False, truncated, self._info()

    def render(self) -> np.ndarray:
        return self.render_at(self.pos)

    def render_at(self, pos) -> np.ndarray:
        """The frame `(64, 64, 3)` uint8 with the agent at room position `pos` in the current layout (after
        `reset`), e.g. a goal image."""
        frame = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
        frame[:] = FLOOR
        wall = np.abs(self._grid_x - WALL_X) < WALL_HALF_WIDTH
        door = np.abs(self._grid_y - self.door_y) < DOOR_HALF_HEIGHT
        frame[wall & ~door] = WALL
        agent = (self._grid_x - pos[0]) ** 2 + (self._grid_y - pos[1]) ** 2 < AGENT_RADIUS**2
        frame[agent] = AGENT
        return frame

    def sample_task(self, seed: int) -> dict[str, Any]:
        """A planning task: a door height and a start and a goal on opposite sides of the wall."""
        rng = np.random.default_rng(seed)
        door_y = float(rng.uniform(*DOOR_RANGE))
        left = WALL_X - WALL_HALF_WIDTH - AGENT_RADIUS
        right = WALL_X + WALL_HALF_WIDTH + AGENT_RADIUS
        sides = [(AGENT_RADIUS, left - 0.05), (right + 0.05, 1 - AGENT_RADIUS)]
        first = int(rng.integers(2))
        start = (rng.uniform(*sides[first]), rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS))
        goal = (rng.uniform(*sides[1 - first]), rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS))
        return {"door_y": door_y, "start": np.array(start), "goal": np.array(goal)}

    def reset_to_task(self, task: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to a task's layout and start; returns (observation, info)."""
        return self.reset(options={"door_y": task["door_y"], "start": task["start"]})

    def goal_image(self, task: dict[str, Any]) -> np.ndarray:
        """The frame of the task's layout with the agent at its goal."""
        if getattr(self, "door_y", None) != task["door_y"]:
            self.reset_to_task(task)
        return self.render_at(task["goal"])

    def goal_reached(self, task: dict[str, Any], info: dict[str, Any]) -> bool:
        """Whether the agent (`info["proprio"]`) is within `SUCCESS_RADIUS` of the task's goal."""
        return bool(np.linalg.norm(np.asarray(info["proprio"]) - task["goal"]) < SUCCESS_RADIUS)

    def _inside(self, pos: np.ndarray) -> bool:
        return bool(np.all(pos >= AGENT_RADIUS - 1e-9) and np.all(pos <= 1 - AGENT_RADIUS + 1e-9))

    def _free_position(self) -> np.ndarray:
        while True:
            pos = self.np_random.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS, size=2)
            if not _collides(pos, self.door_y):
                return pos

    def _info(self) -> dict[str, Any]:
        return {"proprio": self.pos.astype(np.float32), "door_y": self.door_y}


class WallExplorationPolicy:
    """The recording policy: a smooth random walk (each action is 0.8 of the last plus noise), and in
    half the episodes a noisy walk through the door to the other side, so that crossings are in the data."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Start an episode: draw whether it heads for the door."""
        self.last = np.zeros(2)
        self.to_door = bool(self.rng.random() < 0.5)
        self.side: float | None = None  # the side to cross to, set at the first step

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        pos, door_y = np.asarray(info["proprio"], dtype=np.float64), float(info["door_y"])
        if self.side is None:
            self.side = -1.0 if pos[0] > WALL_X else 1.0
        noise = self.rng.normal(0, 0.6, size=2)
        if self.to_door:
            target = np.array([WALL_X + 0.25 * self.side, door_y])
            lined_up = abs(pos[1] - door_y) < DOOR_HALF_HEIGHT - AGENT_RADIUS
            if not lined_up and (pos[0] - WALL_X) * self.side < 0:  # line up with the door first
                target[0] = WALL_X - 0.12 * self.side
            heading = target - pos
            action = heading / max(np.linalg.norm(heading), 1e-6) + 0.5 * noise
        else:
            action = 0.8 * self.last + noise
        self.last = np.clip(action, -1.0, 1.0)
        return self.last.astype(np.float32)
