"""A point agent (a disk) in a walled unit-square room, seen from above as 64x64 RGB frames: the base of
DINO-WM's Wall and PointMaze envs.

Room coordinates are (x, y) in [0, 1]^2 with y growing downwards, as image rows do. The action is a 2-D
vector in [-1, 1]^2; a subclass turns it into a move (`_advance`) and defines the walls (`_collides`,
`_wall_mask`) and the per-episode layout (`_set_layout`, `layout`). A move that would overlap a wall is
tried along each axis alone (sliding), else the agent stays.

Planning tasks are dicts with the layout's keys, "start", "goal" (positions) and "goal_proprio" (the
proprioception of the agent at rest at the goal). `sample_task`, `reset_to_task`, `goal_image` and
`goal_reached` are what `wm-hub plan` needs of an env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

SIZE = 64
AGENT_RADIUS = 0.04
SUCCESS_RADIUS = 0.08  # a plan succeeds when the agent ends this close to the goal position
FLOOR, WALL, AGENT = (236, 232, 220), (60, 64, 72), (220, 50, 40)


class PointNavigationEnv(gym.Env):
    """A point agent in a room with walls; subclasses define the walls, the layout and the motion."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    proprio_dim = 2  # info["proprio"]: (x, y), and (vx, vy) after it where the agent has momentum

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 100) -> None:
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        centres = (np.arange(SIZE) + 0.5) / SIZE
        self._grid_x, self._grid_y = np.meshgrid(centres, centres)  # (H, W) room coordinates of pixels
        self.velocity = np.zeros(2)

    # -- what a subclass defines -----------------------------------------------------------------------
    def _set_layout(self, options: dict[str, Any]) -> None:
        """Draw (with `self.np_random`) or read from `options` this episode's layout."""
        raise NotImplementedError

    def layout(self) -> dict[str, Any]:
        """The current layout's settings, as `reset(options=...)` takes them (may be empty)."""
        raise NotImplementedError

    def _collides(self, xy: np.ndarray) -> bool:
        """Does an agent centred at `xy` overlap a wall?"""
        raise NotImplementedError

    def _wall_mask(self) -> np.ndarray:
        """`(64, 64)` bool: the pixels walls cover."""
        raise NotImplementedError

    def _advance(self, action: np.ndarray) -> None:
        """Move the agent by one step of `action` (clipped to [-1, 1]^2)."""
        raise NotImplementedError

    # -- gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        self._set_layout(options)
        start = options.get("start")
        self.pos = self._free_position() if start is None else np.asarray(start, dtype=np.float64)
        if self.pos.shape != (2,) or not self.is_free(self.pos):
            raise ValueError(f"start {start} is not a free position of the room (x, y in the unit square, "
                             f"off the walls)")
        self.velocity = np.zeros(2)
        self.steps = 0
        return self.render_at(self.pos), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,):
            raise ValueError(f"expected a 2-D action (x, y), got shape {action.shape}")
        self._advance(np.clip(action, -1.0, 1.0))
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
        frame[self._wall_mask()] = WALL
        agent = (self._grid_x - pos[0]) ** 2 + (self._grid_y - pos[1]) ** 2 < AGENT_RADIUS**2
        frame[agent] = AGENT
        return frame

    # -- planning tasks --------------------------------------------------------------------------------
    def sample_task(self, seed: int) -> dict[str, Any]:
        """A planning task drawn from `seed`: the layout's keys, "start", "goal", "goal_proprio"."""
        raise NotImplementedError

    def reset_to_task(self, task: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to a task's layout and start; returns (observation, info)."""
        return self.reset(options={**{k: task[k] for k in self._layout_keys(task)}, "start": task["start"]})

    def goal_image(self, task: dict[str, Any]) -> np.ndarray:
        """The frame of the task's layout with the agent at its goal."""
        if getattr(self, "pos", None) is None or self.layout() != {k: task[k] for k in self._layout_keys(task)}:
            self.reset_to_task(task)
        return self.render_at(task["goal"])

    def path_distances(self, goal, points, cells: int = 48) -> np.ndarray:
        """Lengths (room units) of the shortest collision-free paths from `goal` to each of `points` `(M, 2)`
        in the current layout, on a `cells` x `cells` grid of free agent positions (8-connected, Dijkstra),
        from and to the nearest free grid cell; inf where none connects."""
        import heapq

        centres = (np.arange(cells) + 0.5) / cells
        free = np.array([[self.is_free(np.array((x, y))) for x in centres] for y in centres])  # (rows y, cols x)
        if not free.any():
            raise ValueError("no free position in this layout")
        rows, cols = np.nonzero(free)

        def nearest(pos) -> tuple[int, int]:
            k = np.argmin((centres[cols] - pos[0]) ** 2 + (centres[rows] - pos[1]) ** 2)
            return int(rows[k]), int(cols[k])

        step = 1.0 / cells
        dist = np.full((cells, cells), np.inf)
        start = nearest(goal)
        dist[start] = 0.0
        queue = [(0.0, start)]
        while queue:
            d, (r, c) = heapq.heappop(queue)
            if d > dist[r, c]:
                continue
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    nr, nc = r + dr, c + dc
                    if (dr or dc) and 0 <= nr < cells and 0 <= nc < cells and free[nr, nc]:
                        nd = d + step * np.hypot(dr, dc)
                        if nd < dist[nr, nc]:
                            dist[nr, nc] = nd
                            heapq.heappush(queue, (nd, (nr, nc)))
        return np.array([dist[nearest(p)] for p in np.asarray(points, dtype=np.float64).reshape(-1, 2)])

    def goal_reached(self, task: dict[str, Any], info: dict[str, Any]) -> bool:
        """Whether the agent (`info["proprio"]`) is within `SUCCESS_RADIUS` of the task's goal."""
        return bool(np.linalg.norm(np.asarray(info["proprio"])[:2] - task["goal"]) < SUCCESS_RADIUS)

    # -- helpers ---------------------------------------------------------------------------------------
    def _layout_keys(self, task: dict[str, Any]) -> list[str]:
        return [k for k in task if k not in ("start", "goal", "goal_proprio")]

    def _slide(self, move: np.ndarray) -> np.ndarray:
        """Move by `move` or, where a wall is in the way, along one axis of it; returns the move made."""
        for candidate in (self.pos + move, self.pos + move * (1, 0), self.pos + move * (0, 1)):
            candidate = np.clip(candidate, AGENT_RADIUS, 1 - AGENT_RADIUS)
            if not self._collides(candidate):
                made, self.pos = candidate - self.pos, candidate
                return made
        return np.zeros(2)

    def is_free(self, pos: np.ndarray) -> bool:
        """Can the agent stand at room position `pos` (inside the room, off the walls)?"""
        inside = np.all(pos >= AGENT_RADIUS - 1e-9) and np.all(pos <= 1 - AGENT_RADIUS + 1e-9)
        return bool(inside) and not self._collides(pos)

    def _free_position(self, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = self.np_random if rng is None else rng
        while True:
            pos = rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS, size=2)
            if not self._collides(pos):
                return pos

    def _info(self) -> dict[str, Any]:
        proprio = self.pos if self.proprio_dim == 2 else np.concatenate([self.pos, self.velocity])
        return {"proprio": proprio.astype(np.float32), **self.layout()}


class SmoothRandomPolicy:
    """A recording policy: a smooth random walk, each action 0.8 of the last plus Gaussian noise."""

    def __init__(self, seed: int = 0, noise: float = 0.6) -> None:
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.reset()

    def reset(self) -> None:
        """Start an episode."""
        self.last = np.zeros(2)

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        self.last = np.clip(0.8 * self.last + self.rng.normal(0, self.noise, size=2), -1.0, 1.0)
        return self.last.astype(np.float32)


class TargetRunsPolicy(SmoothRandomPolicy):
    """A recording policy, one behaviour per episode (drawn evenly from `modes`): the smooth random walk, or
    noisy straight runs at points drawn by `draw_target`, each for 10-29 steps or until reached. The runs stop
    at the walls in their way, the moves a planner tries, so that the walls' blocking is in the data."""

    modes: tuple[str, ...] = ("walk", "runs")

    def reset(self) -> None:
        """Start an episode: draw its behaviour."""
        super().reset()
        self.mode = self.modes[int(self.rng.integers(len(self.modes)))]
        self.target: np.ndarray | None = None  # the current run's target point
        self.steps_left = 0  # and the steps it has left

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        if self.mode == "walk":
            return super().__call__(obs, info)
        pos = np.asarray(info["proprio"][:2], dtype=np.float64)
        if self.target is None or self.steps_left == 0 or np.linalg.norm(self.target - pos) < 0.05:
            self.target = self.draw_target(pos, info)
            self.steps_left = int(self.rng.integers(10, 30))
        self.steps_left -= 1
        return self.head(self.target, pos)

    def draw_target(self, pos: np.ndarray, info: dict) -> np.ndarray:
        """A run's target: a point of the room, uniformly."""
        return self.rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS, size=2)

    def head(self, target: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Full speed towards `target`, with noise."""
        heading = target - pos
        noise = self.rng.normal(0, self.noise, size=2)
        self.last = np.clip(heading / max(np.linalg.norm(heading), 1e-6) + 0.5 * noise, -1.0, 1.0)
        return self.last.astype(np.float32)
