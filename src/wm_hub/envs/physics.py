"""A 2D physics scene (gymnasium env, 64x64 RGB) on the pymunk engine: a few objects of distinct
colours and shapes fall, bounce, roll, collide, and are pushed by a paddle.

`reset(seed=s)` builds scene `s`: 2-4 objects (balls, boxes, triangles), random colours from a fixed
palette, random positions and velocities, and a grey paddle on the floor. The action is the paddle's
horizontal velocity in [-1, 1] (x 120 px/s). `info` holds a caption of what has happened so far
("a red ball falls and bounces; the paddle pushes a blue box right"), the per-object states
`(x, y, angle, vx, vy)` and the seed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

SIZE, SCALE = 64, 4  # rendered at 4x, then downsampled (anti-aliasing)
FPS, SUBSTEPS = 15, 4
MAX_OBJECTS = 4
MAX_EVENTS = 2  # contacts named in a caption (the first ones), to keep captions short
PADDLE_SPEED = 120.0
COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (240, 210, 30),
    "purple": (150, 60, 200), "orange": (250, 140, 20), "cyan": (30, 200, 210), "white": (245, 245, 245),
}
SHAPES = ("ball", "box", "triangle")
BACKGROUND, FLOOR, PADDLE = (40, 44, 52), (120, 110, 100), (150, 150, 150)


class PhysicsEnv(gym.Env):
    """The physics scene; observations are the rendered frames, the action moves the paddle."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 64) -> None:
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    # -- scene --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        import pymunk

        super().reset(seed=seed)
        self.seed_value = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        rng = np.random.default_rng(self.seed_value)
        self.space = space = pymunk.Space()
        space.gravity = (0.0, 400.0)  # pixels/s^2, y down
        floor_y = SIZE - 6
        for a, b in (((0, floor_y + 3), (SIZE, floor_y + 3)), ((-3, 0), (-3, SIZE)), ((SIZE + 3, 0), (SIZE + 3, SIZE))):
            wall = pymunk.Segment(space.static_body, a, b, 3.0)  # thick: fast objects must not tunnel
            wall.elasticity, wall.friction, wall.collision_type = 0.6, 0.8, 1
            space.add(wall)
        self.paddle = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self.paddle.position = (float(rng.uniform(8, SIZE - 8)), floor_y - 4)
        paddle_shape = pymunk.Poly.create_box(self.paddle, (10, 8))
        paddle_shape.elasticity, paddle_shape.friction, paddle_shape.collision_type = 0.2, 1.0, 2
        space.add(self.paddle, paddle_shape)

        count = int(rng.integers(2, MAX_OBJECTS + 1))
        colours = rng.choice(list(COLOURS), size=count, replace=False)
        self.objects: list[dict[str, Any]] = []
        for i, colour in enumerate(colours):
            kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
            size = float(rng.uniform(4.5, 7.5))
            body = pymunk.Body()
            body.position = (float(rng.uniform(8, SIZE - 8)), float(rng.uniform(6, 34)))
            body.velocity = (float(rng.normal(0, 40)), float(rng.normal(0, 20)))
            body.angle = float(rng.uniform(0, 2 * np.pi))
            if kind == "ball":
                shape = pymunk.Circle(body, size)
            elif kind == "box":
                shape = pymunk.Poly.create_box(body, (2 * size, 2 * size))
            else:
                shape = pymunk.Poly(body, [(size * np.cos(a), size * np.sin(a))
                                           for a in (np.pi / 2, np.pi / 2 + 2.1, np.pi / 2 - 2.1)])
            shape.density = 1.0
            shape.elasticity = float(rng.uniform(0.3, 0.8))
            shape.friction = 0.6
            shape.collision_type = 10 + i
            space.add(body, shape)
            self.objects.append({"name": f"{colour} {kind}", "kind": kind, "colour": COLOURS[colour],
                                 "body": body, "shape": shape, "start": tuple(body.position), "bounces": 0})
        self.events: list[str] = []
        self._contacts: set[tuple[int, int]] = set()
        space.add_default_collision_handler().begin = self._on_contact
        self.steps = 0
        return self._frame(), self._info()

    def _on_contact(self, arbiter, space, data) -> bool:  # noqa: ANN001 - pymunk callback
        a, b = sorted(s.collision_type for s in arbiter.shapes)
        impulse_speed = abs(arbiter.shapes[0].body.velocity.y - arbiter.shapes[1].body.velocity.y) + abs(
            arbiter.shapes[0].body.velocity.x - arbiter.shapes[1].body.velocity.x)
        if a == 1 and b >= 10 and impulse_speed > 60:  # an object lands hard on the floor or a wall
            self.objects[b - 10]["bounces"] += 1
        elif a == 2 and b >= 10 and (a, b) not in self._contacts:
            self._contacts.add((a, b))
            self.events.append(f"the paddle pushes the {self.objects[b - 10]['name']}")
        elif a >= 10 and (a, b) not in self._contacts:
            self._contacts.add((a, b))
            self.events.append(f"the {self.objects[a - 10]['name']} hits the {self.objects[b - 10]['name']}")
        return True

    def step(self, action):
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (1,) or not np.all(np.isfinite(action)):
            raise ValueError(f"expected one paddle velocity in [-1, 1], got {action.tolist()}")
        vx = float(np.clip(action[0], -1, 1)) * PADDLE_SPEED
        x = float(self.paddle.position.x)
        if (x <= 6 and vx < 0) or (x >= SIZE - 6 and vx > 0):
            vx = 0.0
        self.paddle.velocity = (vx, 0.0)
        for _ in range(SUBSTEPS):
            self.space.step(1.0 / (FPS * SUBSTEPS))
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        return self._frame(), 0.0, False, truncated, self._info()

    # -- description --------------------------------------------------------------------------
    def caption(self) -> str:
        """What has happened so far, from the simulation: motion of each object, then contacts."""
        clauses = []
        for obj in self.objects:
            (x0, y0), (x, y) = obj["start"], obj["body"].position
            verbs = []
            if y - y0 > 8:
                verbs.append("falls")
            if obj["bounces"]:
                verbs.append("bounces")
            if abs(x - x0) > 8:
                verb = "rolls" if obj["kind"] == "ball" else "slides"
                verbs.append(f"{verb} {'right' if x > x0 else 'left'}")
            if not verbs:
                verbs.append("stays still")
            clauses.append(f"a {obj['name']} " + (" and ".join([", ".join(verbs[:-1]), verbs[-1]])
                                                  if len(verbs) > 1 else verbs[0]))
        return "; ".join(clauses + self.events[:MAX_EVENTS])

    def object_states(self) -> np.ndarray:
        """`(MAX_OBJECTS, 5)`: x, y, angle, vx, vy per object (zeros for absent slots)."""
        states = np.zeros((MAX_OBJECTS, 5), np.float32)
        for i, obj in enumerate(self.objects):
            body = obj["body"]
            states[i] = (*body.position, body.angle, *body.velocity)
        return states

    def _info(self) -> dict[str, Any]:
        return {"caption": self.caption(), "object_states": self.object_states().reshape(-1),
                "seed": self.seed_value, "paddle_x": float(self.paddle.position.x)}

    # -- rendering ----------------------------------------------------------------------------
    def _frame(self) -> np.ndarray:
        from PIL import Image, ImageDraw

        big = Image.new("RGB", (SIZE * SCALE, SIZE * SCALE), BACKGROUND)
        draw = ImageDraw.Draw(big)
        draw.rectangle([0, (SIZE - 6) * SCALE, SIZE * SCALE, SIZE * SCALE], fill=FLOOR)
        shapes = [(s, PADDLE) for s in self.paddle.shapes] + [(o["shape"], o["colour"]) for o in self.objects]
        for shape, colour in shapes:
            body = shape.body
            if hasattr(shape, "radius") and not hasattr(shape, "get_vertices"):
                (x, y), r = body.position, shape.radius
                draw.ellipse([(x - r) * SCALE, (y - r) * SCALE, (x + r) * SCALE, (y + r) * SCALE], fill=colour)
                # a darker spoke shows rotation
                end = body.local_to_world((r * 0.8, 0))
                draw.line([x * SCALE, y * SCALE, end.x * SCALE, end.y * SCALE],
                          fill=tuple(int(c * 0.5) for c in colour), width=SCALE)
            else:
                points = [body.local_to_world(v) for v in shape.get_vertices()]
                draw.polygon([(p.x * SCALE, p.y * SCALE) for p in points], fill=colour)
        return np.asarray(big.resize((SIZE, SIZE), Image.BOX))

    def render(self) -> np.ndarray:
        return self._frame()


class ScriptedPaddle:
    """The paddle policy of the captioned dataset: a random velocity held for 4-12 steps, still half the
    time, so some clips show pushing and some only falling and bouncing."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.velocity, self.hold = 0.0, 0

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        if self.hold <= 0:
            self.velocity = 0.0 if self.rng.random() < 0.5 else float(self.rng.uniform(-1, 1))
            self.hold = int(self.rng.integers(4, 13))
        self.hold -= 1
        return np.array([self.velocity], dtype=np.float32)

    def skip(self, steps: int) -> None:
        """Advance as if the policy had acted `steps` times (it ignores its observations), so that a recording
        can start at any clip in the state one long recording would have there."""
        for _ in range(steps):
            self(None, {})


def _record_part(args: tuple[int, int, int, int]) -> Any:
    from wm_hub.data import record_episodes

    seed, first, count, frames = args
    policy = ScriptedPaddle(seed)
    policy.skip(first * (frames - 1))
    return record_episodes(PhysicsEnv(), count, policy=policy, max_steps=frames - 1, seed=seed, first_episode=first,
                           info_keys=("object_states",), episode_captions=True, progress=first == 0)


def record_physics_clips(num_clips: int, seed: int = 0, frames: int = 33, workers: int = 1) -> Any:
    """The captioned physics dataset: clip `i` is scene `seed + i`, `frames` frames long, the paddle driven by
    `ScriptedPaddle(seed)`. `workers` processes each record a contiguous part; the result is the same dataset
    as one process records (a `datasets.Dataset`, columns as `record_episodes` writes them)."""
    import multiprocessing

    import datasets

    if num_clips < 1 or frames < 2 or workers < 1:
        raise ValueError(f"expected num_clips >= 1, frames >= 2, workers >= 1, got {num_clips}, {frames}, {workers}")
    workers = min(workers, num_clips)
    bounds = np.linspace(0, num_clips, workers + 1).round().astype(int)
    parts = [(seed, int(a), int(b - a), frames) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        return _record_part(parts[0])
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return datasets.concatenate_datasets(pool.map(_record_part, parts))

