"""Wall (DINO-WM): a point agent in a square room split by a vertical wall with one door.

The room is the unit square; the wall stands at x = 0.5 and is `WALL_HALF_WIDTH * 2` thick, with a door
of height `2 * DOOR_HALF_HEIGHT` whose centre height is drawn per episode. The action is a 2-D velocity
in [-1, 1]^2 (x `SPEED` room units per step); the agent stops at the walls and passes only through the
door. Observations are 64x64 RGB frames; `info["proprio"]` is the agent's (x, y) position and
`info["door_y"]` the door's height (`wm_hub.envs.navigation` has what Wall shares with PointMaze).

Planning tasks (`sample_task`) put the start and the goal on opposite sides of the wall, so that every
plan has to find the door.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wm_hub.envs.navigation import AGENT_RADIUS, PointNavigationEnv, TargetRunsPolicy

SPEED = 0.05
WALL_X, WALL_HALF_WIDTH = 0.5, 0.03
DOOR_HALF_HEIGHT = 0.1
DOOR_RANGE = (0.25, 0.75)  # the door's centre height is drawn uniformly from this range


class WallEnv(PointNavigationEnv):
    """The Wall environment; `reset(options={"start": (x, y), "door_y": d})` fixes the layout."""

    def _set_layout(self, options: dict[str, Any]) -> None:
        self.door_y = float(options.get("door_y", self.np_random.uniform(*DOOR_RANGE)))
        if not DOOR_RANGE[0] <= self.door_y <= DOOR_RANGE[1]:
            raise ValueError(f"door_y should lie in {DOOR_RANGE}, got {self.door_y}")

    def layout(self) -> dict[str, Any]:
        return {"door_y": self.door_y}

    def _collides(self, xy: np.ndarray) -> bool:
        x, y = float(xy[0]), float(xy[1])
        if abs(x - WALL_X) >= WALL_HALF_WIDTH + AGENT_RADIUS:
            return False
        door = self.door_y - DOOR_HALF_HEIGHT + AGENT_RADIUS <= y <= self.door_y + DOOR_HALF_HEIGHT - AGENT_RADIUS
        return not door

    def _wall_mask(self) -> np.ndarray:
        wall = np.abs(self._grid_x - WALL_X) < WALL_HALF_WIDTH
        return wall & ~(np.abs(self._grid_y - self.door_y) < DOOR_HALF_HEIGHT)

    def _advance(self, action: np.ndarray) -> None:
        self._slide(action * SPEED)  # the action is the velocity: no momentum

    def sample_task(self, seed: int) -> dict[str, Any]:
        """A door height and a start and a goal on opposite sides of the wall."""
        rng = np.random.default_rng(seed)
        door_y = float(rng.uniform(*DOOR_RANGE))
        left = WALL_X - WALL_HALF_WIDTH - AGENT_RADIUS
        right = WALL_X + WALL_HALF_WIDTH + AGENT_RADIUS
        sides = [(AGENT_RADIUS, left - 0.05), (right + 0.05, 1 - AGENT_RADIUS)]
        first = int(rng.integers(2))
        start = np.array((rng.uniform(*sides[first]), rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS)))
        goal = np.array((rng.uniform(*sides[1 - first]), rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS)))
        return {"door_y": door_y, "start": start, "goal": goal, "goal_proprio": goal.copy()}


class WallExplorationPolicy(TargetRunsPolicy):
    """The recording policy, one of three behaviours per episode: a smooth random walk; a noisy walk through the
    door to the other side, so that crossings are in the data; or noisy straight runs at points on the other
    side, which stop at the wall unless they meet the door."""

    modes = ("walk", "door", "runs")

    def reset(self) -> None:
        super().reset()
        self.side: float | None = None  # the side to cross to, set at the first step

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        if self.mode != "door":
            return super().__call__(obs, info)
        pos, door_y = np.asarray(info["proprio"], dtype=np.float64), float(info["door_y"])
        if self.side is None:
            self.side = -1.0 if pos[0] > WALL_X else 1.0
        target = np.array([WALL_X + 0.25 * self.side, door_y])
        lined_up = abs(pos[1] - door_y) < DOOR_HALF_HEIGHT - AGENT_RADIUS
        if not lined_up and (pos[0] - WALL_X) * self.side < 0:  # line up with the door first
            target[0] = WALL_X - 0.12 * self.side
        return self.head(target, pos)

    def draw_target(self, pos: np.ndarray, info: dict) -> np.ndarray:
        """A point on the other side of the wall."""
        x = self.rng.uniform(WALL_X + WALL_HALF_WIDTH + AGENT_RADIUS, 1 - AGENT_RADIUS)
        return np.array([x if pos[0] < WALL_X else 1 - x, self.rng.uniform(0, 1)])
