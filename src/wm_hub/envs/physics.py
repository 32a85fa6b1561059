"""A 2D physics scene (gymnasium env, 64x64 RGB) on the pymunk engine: a few objects of distinct
colours and shapes fall, bounce, roll, collide, and are pushed by an agent.

`reset(seed=s)` builds scene `s`: 2-4 objects (balls, boxes, triangles), random colours from a fixed
palette, random positions and velocities, and a grey agent. With `agent="paddle"` (the captioned dataset)
it is a paddle on the floor and the action is its horizontal velocity in [-1, 1] (x 120 px/s); with
`agent="pusher"` (the action-control dataset) it is a disk (16 px across) that flies anywhere in the scene, and
the action is its 2-D velocity (x, y) in [-1, 1]^2 (x 45 px/s, y down); a pusher scene starts once its objects
have come to rest (`PUSHER_SETTLE_STEPS`), so that what moves after the first frame is what the actions do. Scene
`s` has the same objects with either agent. `info` holds a caption of what has happened so far ("a red ball falls
and bounces; the paddle pushes a blue box right"), the per-object states `(x, y, angle, vx, vy)`, the agent's
position and the seed.
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
AGENTS = ("paddle", "pusher")
PUSHER_RADIUS = 8.0  # larger than every object (radius 4.5-7.5): its moves are a large part of each frame
PUSHER_SPEED = 45.0  # 3 px a frame at full speed: it stays in view for a clip, and a latent frame sees it move
PUSHER_SETTLE_STEPS = 45  # frames simulated before a pusher scene starts (3 s: 9 in 10 objects then under 2.3 px/s)


class PhysicsEnv(gym.Env):
    """The physics scene; observations are the rendered frames, the action moves the agent (a paddle or a
    pusher, see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 64, agent: str = "paddle"
                 ) -> None:
        if agent not in AGENTS:
            raise ValueError(f"agent must be one of {AGENTS}, got {agent!r}")
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.agent_kind = agent
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1 if agent == "paddle" else 2,), dtype=np.float32)

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
        self.agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        agent_x = float(rng.uniform(8, SIZE - 8))
        if self.agent_kind == "paddle":
            self.agent.position = (agent_x, floor_y - 4)
            self._add_agent_shape(pymunk.Poly.create_box(self.agent, (10, 8)))

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
        if self.agent_kind == "pusher":  # placed after the objects, so that scene s has the same objects
            self.agent.position = (agent_x, float(rng.uniform(14, floor_y - 10)))
            self._add_agent_shape(pymunk.Circle(self.agent, PUSHER_RADIUS))
        self.events: list[str] = []
        self._contacts: set[tuple[int, int]] = set()
        space.add_default_collision_handler().begin = self._on_contact  # before any contact exists
        if self.agent_kind == "pusher":  # the objects come to rest: after this, only the pusher moves them
            self._simulate(PUSHER_SETTLE_STEPS)
            self.events, self._contacts = [], set()
            for obj in self.objects:
                obj["start"], obj["bounces"] = tuple(obj["body"].position), 0
        self.steps = 0
        return self._frame(), self._info()

    def _simulate(self, frames: int) -> None:
        """Advance the physics by `frames` frames (`SUBSTEPS` engine steps each)."""
        for _ in range(frames * SUBSTEPS):
            self.space.step(1.0 / (FPS * SUBSTEPS))

    def _add_agent_shape(self, shape) -> None:  # noqa: ANN001 - a pymunk shape
        shape.elasticity, shape.friction, shape.collision_type = 0.2, 1.0, 2
        self.space.add(self.agent, shape)

    def _on_contact(self, arbiter, space, data) -> bool:  # noqa: ANN001 - pymunk callback
        a, b = sorted(s.collision_type for s in arbiter.shapes)
        impulse_speed = abs(arbiter.shapes[0].body.velocity.y - arbiter.shapes[1].body.velocity.y) + abs(
            arbiter.shapes[0].body.velocity.x - arbiter.shapes[1].body.velocity.x)
        if a == 1 and b >= 10 and impulse_speed > 60:  # an object lands hard on the floor or a wall
            self.objects[b - 10]["bounces"] += 1
        elif a == 2 and b >= 10 and (a, b) not in self._contacts:
            self._contacts.add((a, b))
            self.events.append(f"the {self.agent_kind} pushes the {self.objects[b - 10]['name']}")
        elif a >= 10 and (a, b) not in self._contacts:
            self._contacts.add((a, b))
            self.events.append(f"the {self.objects[a - 10]['name']} hits the {self.objects[b - 10]['name']}")
        return True

    def step(self, action):
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(f"expected the {self.agent_kind}'s velocity, {self.action_space.shape[0]} number(s) "
                             f"in [-1, 1], got {action.tolist()}")
        speed = PADDLE_SPEED if self.agent_kind == "paddle" else PUSHER_SPEED
        velocity = np.clip(action, -1, 1).astype(np.float64) * speed
        (x, y), floor_y = self.agent.position, SIZE - 6
        vx = 0.0 if (x <= 6 and velocity[0] < 0) or (x >= SIZE - 6 and velocity[0] > 0) else float(velocity[0])
        vy = 0.0
        if self.agent_kind == "pusher":  # between the ceiling and the floor
            top, bottom = PUSHER_RADIUS + 1, floor_y - PUSHER_RADIUS - 1
            vy = 0.0 if (y <= top and velocity[1] < 0) or (y >= bottom and velocity[1] > 0) else float(velocity[1])
        self.agent.velocity = (vx, vy)
        self._simulate(1)
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
        info = {"caption": self.caption(), "object_states": self.object_states().reshape(-1),
                "seed": self.seed_value, "agent_position": np.asarray(self.agent.position, np.float32)}
        if self.agent_kind == "paddle":
            info["paddle_x"] = float(self.agent.position.x)
        return info

    # -- rendering ----------------------------------------------------------------------------
    def _frame(self) -> np.ndarray:
        from PIL import Image, ImageDraw

        big = Image.new("RGB", (SIZE * SCALE, SIZE * SCALE), BACKGROUND)
        draw = ImageDraw.Draw(big)
        draw.rectangle([0, (SIZE - 6) * SCALE, SIZE * SCALE, SIZE * SCALE], fill=FLOOR)
        shapes = [(s, PADDLE) for s in self.agent.shapes] + [(o["shape"], o["colour"]) for o in self.objects]
        for shape, colour in shapes:
            body = shape.body
            if hasattr(shape, "radius") and not hasattr(shape, "get_vertices"):
                (x, y), r = body.position, shape.radius
                draw.ellipse([(x - r) * SCALE, (y - r) * SCALE, (x + r) * SCALE, (y + r) * SCALE], fill=colour)
                if body is self.agent:
                    continue
                # a darker spoke shows an object's rotation
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


class ScriptedPusher:
    """The pusher policy of the action-control dataset: a 2-D velocity held for 3-8 steps, toward one of the
    objects (from `info`) 60% of the time, else in a random direction, at 0.5-1 of full speed. Each episode
    draws from its own seed (`seed`, episode number), so any part of a recording can be made alone."""

    def __init__(self, seed: int = 0, first_episode: int = 0) -> None:
        self.seed, self.episode = seed, first_episode
        self.rng, self.velocity, self.hold = np.random.default_rng([seed, first_episode]), np.zeros(2), 0

    def reset(self) -> None:
        self.rng, self.hold = np.random.default_rng([self.seed, self.episode]), 0
        self.episode += 1

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        if self.hold <= 0:
            angle = self.rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
            objects = np.asarray(info["object_states"]).reshape(MAX_OBJECTS, 5)
            present = np.flatnonzero(np.abs(objects[:, :2]).sum(axis=1) > 0)
            if self.rng.random() < 0.6 and len(present):
                offset = objects[self.rng.choice(present), :2] - np.asarray(info["agent_position"])
                direction = offset / max(float(np.linalg.norm(offset)), 1e-6)
            self.velocity = direction * self.rng.uniform(0.5, 1.0)
            self.hold = int(self.rng.integers(3, 9))
        self.hold -= 1
        return self.velocity.astype(np.float32)


class SceneRepeats(gym.Wrapper):
    """Scenes shown `repeats` times each: `reset(seed=first_seed + i)` builds scene `first_seed + i // repeats`, so
    that consecutive episodes replay one scene under the policy's different actions."""

    def __init__(self, env: gym.Env, first_seed: int, repeats: int) -> None:
        super().__init__(env)
        if repeats < 1:
            raise ValueError(f"expected repeats >= 1, got {repeats}")
        self.first_seed, self.repeats = first_seed, repeats

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            seed = self.first_seed + (seed - self.first_seed) // self.repeats
        return self.env.reset(seed=seed, options=options)


def _record_part(seed: int, frames: int, agent: str, repeats: int, first: int, count: int) -> Any:
    from wm_hub.data import record_episodes

    if agent == "paddle":
        policy = ScriptedPaddle(seed)
        policy.skip(first * (frames - 1))
    else:
        policy = ScriptedPusher(seed, first)
    info_keys = ("object_states",) if agent == "paddle" else ("object_states", "agent_position", "seed")
    env = SceneRepeats(PhysicsEnv(agent=agent), seed, repeats) if repeats > 1 else PhysicsEnv(agent=agent)
    return record_episodes(env, count, policy=policy, max_steps=frames - 1, seed=seed,
                           first_episode=first, info_keys=info_keys, episode_captions=True, progress=first == 0)


def record_physics_clips(num_clips: int, seed: int = 0, frames: int = 33, workers: int = 1, agent: str = "paddle",
                         actions_per_scene: int = 1) -> Any:
    """The physics datasets: clip `i` is scene `seed + i // actions_per_scene`, `frames` frames long, the agent
    driven by `ScriptedPaddle(seed)` (`agent="paddle"`, the captioned dataset) or `ScriptedPusher(seed)`
    (`"pusher"`, the action-control dataset; with `actions_per_scene` > 1 each scene is recorded under that many
    of its action sequences, so that only the actions tell the clips of one scene apart). `workers` processes
    each record a contiguous part; the result is the same dataset as one process records (a `datasets.Dataset`,
    columns as `record_episodes` writes them)."""
    from functools import partial

    from wm_hub.data import record_in_parts

    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, got {agent!r}")
    if frames < 2:
        raise ValueError(f"expected frames >= 2, got {frames}")
    if actions_per_scene < 1 or (actions_per_scene > 1 and agent != "pusher"):
        raise ValueError(f"actions_per_scene > 1 needs agent='pusher' (the paddle's policy has one stream of "
                         f"actions), and >= 1; got {actions_per_scene} with agent={agent!r}")
    return record_in_parts(partial(_record_part, seed, frames, agent, actions_per_scene), num_clips, workers)

