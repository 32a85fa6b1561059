"""PointMaze (DINO-WM): a point mass with momentum in a U-shaped maze (the layout of D4RL's maze2d-umaze).

The room is a 5x5 grid of cells (each 0.2 room units) whose border and middle bar are walls, so the free
cells form a U. The action is a 2-D force in [-1, 1]^2: the velocity decays by `DAMPING` per step, gains
`ACCEL` times the action and is capped at `MAX_SPEED` per axis; hitting a wall stops the agent's motion
along that axis. `info["proprio"]` is (x, y, vx, vy), as gymnasium-robotics' PointMaze observes it.

This is the project's own env, written instead of gymnasium-robotics' MuJoCo PointMaze so that data
generation and planning need no renderer; the layout is fixed, start and goal are drawn per task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wm_hub.envs.navigation import AGENT_RADIUS, PointNavigationEnv, TargetRunsPolicy

U_MAZE = np.array([[1, 1, 1, 1, 1],
                   [1, 0, 0, 0, 1],
                   [1, 1, 1, 0, 1],
                   [1, 0, 0, 0, 1],
                   [1, 1, 1, 1, 1]], dtype=bool)  # rows are y (downwards), columns x; True = wall
CELL = 1.0 / U_MAZE.shape[0]
DAMPING, ACCEL, MAX_SPEED = 0.8, 0.012, 0.06
MIN_TASK_DISTANCE = 0.4  # start and goal of a planning task are at least this far apart (straight line)


class PointMazeEnv(PointNavigationEnv):
    """The PointMaze environment; `reset(options={"start": (x, y)})` sets the start (the maze is fixed)."""

    proprio_dim = 4

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 100) -> None:
        super().__init__(render_mode, max_episode_steps)
        rows, cols = np.nonzero(U_MAZE)
        self._walls = np.stack([cols * CELL, rows * CELL], axis=1)  # (n, 2) top-left corners of wall cells
        cells = np.floor(np.stack([self._grid_y, self._grid_x]) / CELL).astype(int)
        self._mask = U_MAZE[cells[0], cells[1]]

    def _set_layout(self, options: dict[str, Any]) -> None:
        pass  # one fixed maze

    def layout(self) -> dict[str, Any]:
        return {}

    def _collides(self, xy: np.ndarray) -> bool:
        nearest = np.clip(np.asarray(xy, dtype=np.float64), self._walls, self._walls + CELL)  # per wall cell
        return bool((((nearest - xy) ** 2).sum(1) < AGENT_RADIUS**2).any())

    def _wall_mask(self) -> np.ndarray:
        return self._mask

    def _advance(self, action: np.ndarray) -> None:
        self.velocity = np.clip(DAMPING * self.velocity + ACCEL * action, -MAX_SPEED, MAX_SPEED)
        made = self._slide(self.velocity)
        blocked = np.abs(made - self.velocity) > 1e-12
        self.velocity[blocked] = 0.0

    def sample_task(self, seed: int) -> dict[str, Any]:
        """A start and a goal at least `MIN_TASK_DISTANCE` apart, both at rest."""
        rng = np.random.default_rng(seed)
        while True:
            start, goal = self._free_position(rng), self._free_position(rng)
            if np.linalg.norm(start - goal) >= MIN_TASK_DISTANCE:
                return {"start": start, "goal": goal, "goal_proprio": np.concatenate([goal, np.zeros(2)])}


class PointMazeExplorationPolicy(TargetRunsPolicy):
    """The recording policy: in half the episodes a smooth random walk, in the other half noisy runs at points of
    free cells, which stop at the maze's walls and bar when these are in the way."""

    def draw_target(self, pos: np.ndarray, info: dict) -> np.ndarray:
        """A point of a free cell, uniformly."""
        rows, cols = np.nonzero(~U_MAZE)
        cell = int(self.rng.integers(len(rows)))
        offset = self.rng.uniform(AGENT_RADIUS, CELL - AGENT_RADIUS, size=2)
        return np.array([cols[cell] * CELL, rows[cell] * CELL]) + offset
