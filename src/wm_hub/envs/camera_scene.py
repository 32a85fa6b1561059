"""A small 3D scene seen by a moving camera (gymnasium env, 64x64 RGB): the camera-control dataset.

`reset(seed=s)` builds scene `s`: 3-5 axis-aligned boxes of distinct colours (the physics scenes' palette)
on a two-tone checkered floor under a directional light (Lambert shading, hard shadows, distance fog), a ridge of
distant hills on the horizon (so that a turning camera moves the sky's pixels too), and places the
camera 4.5-7 units from the centre, 1.2-2.5 units up, looking at the centre. The renderer is a ray caster
of our own in numpy (2x supersampled, box-filtered). The action moves the camera in its own frame:
(right, up, forward, yaw) in [-1, 1], times 0.25 units and 4 degrees per step (yaw > 0 turns right).
`info` holds the pinhole `intrinsics` (3x3, pixels, flattened) and the `camera_pose` (4x4 camera-to-world,
OpenCV axes: x right, y down, z forward; flattened); the world is z-up.

`CameraPathPolicy` flies the paths of the dataset: a pan (yaw only), an orbit (sideways while turning to keep
the centre in view) or a dolly (forward or back), each at a random speed and direction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from wm_hub.envs.physics import COLOURS

SIZE, SUPERSAMPLE = 64, 2
FOV_DEGREES = 60.0
MOVE, TURN = 0.25, np.deg2rad(4.0)  # per step at action 1
BACKGROUND_TOP, BACKGROUND_BOTTOM = np.array([40, 44, 52]), np.array([70, 78, 92])
LIGHT = np.array([0.4, -0.5, 0.77]) / np.linalg.norm([0.4, -0.5, 0.77])
PATHS = ("pan", "orbit", "dolly")
CHECKER, FOG_DISTANCE = 1.5, 12.0  # floor squares (units); distance over which the floor fades by e
HILLS = np.array([62, 70, 86])  # the distant hills' colour, between the sky's and the horizon's


def intrinsics(size: int = SIZE, fov_degrees: float = FOV_DEGREES) -> np.ndarray:
    """Pinhole K `(3, 3)` of a square `size` image with horizontal field of view `fov_degrees`."""
    focal = 0.5 * size / np.tan(np.deg2rad(fov_degrees) / 2)
    return np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], dtype=np.float64)


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world `(4, 4)` (OpenCV axes) of a camera at `eye` looking at `target`, z-up world."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError(f"look_at from {eye.tolist()} to {target.tolist()} looks straight up or down: no 'right'")
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    pose[:3, 3] = eye
    return pose


def _box_hits(origins: np.ndarray, directions: np.ndarray, lo: np.ndarray, hi: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Slab test of rays `(N, 3)` against boxes `(M, 3)` corners: entry distance `(N, M)` (inf for a miss)
    and the axis `(N, M)` of the entry face."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / directions[:, None, :]  # (N, 1, 3)
        t1, t2 = (lo[None] - origins[:, None]) * inv, (hi[None] - origins[:, None]) * inv  # (N, M, 3)
    near, far = np.fmin(t1, t2), np.fmax(t1, t2)
    t_near, t_far = near.max(axis=-1), far.min(axis=-1)
    hit = (t_near <= t_far) & (t_near > 1e-4)
    return np.where(hit, t_near, np.inf), near.argmax(axis=-1)


class CameraSceneEnv(gym.Env):
    """Boxes on a floor, rendered from a camera that the action moves."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 64) -> None:
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.K = intrinsics(SIZE)
        # The rays through the (supersampled) pixel centres in the camera's frame, K^-1 [u, v, 1]: the same every frame
        n = SIZE * SUPERSAMPLE
        v, u = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="ij")
        self._pixel_rays = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ np.linalg.inv(intrinsics(n)).T

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.seed_value = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        rng = np.random.default_rng(self.seed_value)
        count = int(rng.integers(3, 6))
        colours = rng.choice(list(COLOURS), size=count, replace=False)
        self.colours = np.array([COLOURS[c] for c in colours], dtype=np.float64)
        centres = rng.uniform(-2.2, 2.2, size=(count, 2))
        half = np.c_[rng.uniform(0.25, 0.6, size=(count, 2)), rng.uniform(0.2, 0.8, size=count)]
        self.lo = np.c_[centres - half[:, :2], np.zeros(count)]
        self.hi = np.c_[centres + half[:, :2], 2 * half[:, 2]]
        tones = rng.uniform(90, 160, size=3)
        self.floor = np.stack([tones, tones * rng.uniform(0.45, 0.6)])  # a light and a dark tone
        # The hills' elevation (radians) by azimuth: 5 degrees plus three sines of random phase and 1-2.5 degrees each
        self.hills = (rng.uniform(0, 2 * np.pi, size=3), np.deg2rad(rng.uniform(1.0, 2.5, size=3)))
        azimuth, distance = rng.uniform(0, 2 * np.pi), rng.uniform(4.5, 7.0)
        eye = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(1.2, 2.5)])
        self.pose = look_at(eye, np.array([0.0, 0.0, 0.3]))
        self.steps = 0
        return self._frame(), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (4,) or not np.all(np.isfinite(action)):
            raise ValueError(f"expected a camera move (right, up, forward, yaw) in [-1, 1], got {action.tolist()}")
        right, up, forward, yaw = np.clip(action, -1, 1)
        R, t = self.pose[:3, :3], self.pose[:3, 3]
        t = t + MOVE * (right * R[:, 0] - up * R[:, 1] + forward * R[:, 2])  # y is down
        angle = yaw * TURN  # about the world's z axis: positive turns the view right (clockwise seen from above)
        c, s = np.cos(-angle), np.sin(-angle)
        turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        self.pose[:3, :3], self.pose[:3, 3] = turn @ R, t
        self.steps += 1
        return self._frame(), 0.0, False, self.steps >= self.max_episode_steps, self._info()

    def _info(self) -> dict[str, Any]:
        return {"intrinsics": self.K.astype(np.float32).reshape(-1), "camera_pose": self.pose.astype(np.float32),
                "seed": self.seed_value}

    def _frame(self) -> np.ndarray:
        directions = self._pixel_rays @ self.pose[:3, :3].T
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        origin = self.pose[:3, 3]
        origins = np.broadcast_to(origin, directions.shape)
        # Sky: a vertical gradient by the ray's elevation
        elevation = np.clip(directions[:, 2] * 2 + 0.5, 0, 1)[:, None]
        image = elevation * BACKGROUND_TOP + (1 - elevation) * BACKGROUND_BOTTOM
        azimuth = np.arctan2(directions[:, 1], directions[:, 0])
        phases, heights = self.hills
        ridge = np.deg2rad(5.0) + (heights * np.sin(np.arange(2, 5) * azimuth[:, None] + phases)).sum(axis=-1)
        image = np.where((np.arcsin(np.clip(directions[:, 2], -1, 1)) < ridge)[:, None], HILLS, image)
        # Floor (z = 0) and boxes: the nearest hit
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = np.where(directions[:, 2] < -1e-6, -origin[2] / directions[:, 2], np.inf)
        t_box, axis = _box_hits(origins, directions, self.lo, self.hi)
        nearest = t_box.argmin(axis=-1)
        t_obj = t_box[np.arange(len(directions)), nearest]
        t = np.minimum(t_floor, t_obj)
        hit = np.isfinite(t)
        points = origins + directions * np.where(hit, t, 0)[:, None]
        on_box = hit & (t_obj < t_floor)
        on_floor = hit & ~on_box
        normals = np.zeros_like(directions)
        normals[on_floor, 2] = 1.0
        box_axis = axis[np.arange(len(directions)), nearest]
        normals[on_box, box_axis[on_box]] = -np.sign(directions[on_box, box_axis[on_box]])
        checker = (np.floor(points[:, 0] / CHECKER) + np.floor(points[:, 1] / CHECKER)).astype(int) % 2
        albedo = np.where(on_box[:, None], self.colours[nearest], self.floor[checker])
        # Shadows: a ray to the light blocked by a box
        shadow_t, _ = _box_hits(points + normals * 1e-3, np.broadcast_to(LIGHT, points.shape), self.lo, self.hi)
        lit = np.isinf(shadow_t.min(axis=-1))
        shade = 0.45 + 0.55 * np.clip(normals @ LIGHT, 0, 1) * lit
        fog = np.exp(-np.where(hit, t, 0) / FOG_DISTANCE)[:, None]  # far floor fades into the horizon's colour
        image = np.where(hit[:, None], fog * albedo * shade[:, None] + (1 - fog) * BACKGROUND_BOTTOM, image)
        image = image.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE, 3).mean(axis=(1, 3))
        return np.clip(image.round(), 0, 255).astype(np.uint8)

    def render(self) -> np.ndarray:
        return self._frame()


class CameraPathPolicy:
    """The dataset's camera paths, one per episode: episode e flies `PATHS[e % 3]` (pan, orbit, dolly) with a
    speed and sign drawn from seed (`seed`, e), so any part of a recording can be made alone."""

    def __init__(self, seed: int = 0, first_episode: int = 0) -> None:
        self.seed, self.episode = seed, first_episode
        self.action: np.ndarray | None = None

    def reset(self) -> None:
        rng = np.random.default_rng([self.seed, self.episode])
        self.path = PATHS[self.episode % len(PATHS)]
        self.episode += 1
        sign, speed = rng.choice([-1.0, 1.0]), rng.uniform(0.4, 1.0)
        if self.path == "pan":
            self.action = np.array([0, 0, 0, sign * speed])
        elif self.path == "orbit":  # sideways at `speed`, turning by the angle that keeps a point ~5.5 ahead
            self.action = np.array([sign * speed, 0, 0, -sign * speed * MOVE / (5.5 * TURN)])
        else:
            self.action = np.array([0, 0, sign * speed, 0])
        self.action = self.action.astype(np.float32)

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        if self.action is None:  # used without an episode start
            self.reset()
        return self.action


def _record_part(seed: int, frames: int, first: int, count: int) -> Any:
    from wm_hub.data import record_episodes

    return record_episodes(CameraSceneEnv(), count, policy=CameraPathPolicy(seed, first), max_steps=frames - 1,
                           seed=seed, first_episode=first, info_keys=("intrinsics", "seed"), progress=first == 0)


def record_camera_clips(num_clips: int, seed: int = 0, frames: int = 17, workers: int = 1) -> Any:
    """The camera-control dataset: clip `i` is scene `seed + i` flown by `CameraPathPolicy(seed)` for `frames`
    frames (a `datasets.Dataset`; `intrinsics`, `camera_pose` and the scene `seed` per row, the moves as
    `action`), recorded by `workers` processes (the same dataset)."""
    from functools import partial

    from wm_hub.data import record_in_parts

    if frames < 2:
        raise ValueError(f"expected frames >= 2, got {frames}")
    return record_in_parts(partial(_record_part, seed, frames), num_clips, workers)
