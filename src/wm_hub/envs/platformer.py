"""A 2D platformer (gymnasium env, 64x64 RGB) with levels generated from a seed.

Each level is a strip of 8x8-pixel tiles, 8 tiles high: ground of varying height with gaps, floating
platforms, coins, and a flag at the end, over a sky with clouds and striped parallax hills that scroll at
half speed. The camera follows the player horizontally. Palettes vary by level. Ground is textured as
bricks: with flat tiles, a 2-pixel scroll changed a dozen pixels of the frame, and what the player did
could hardly be seen (a latent action model learned nothing of left and right from such frames).

Actions: 0 noop, 1 left, 2 right, 3 jump, 4 left+jump, 5 right+jump. Jumping works from the ground.
Reward: +1 per coin, +5 at the flag (terminates), -1 for falling into a gap (terminates).
`info` holds the player's position, `on_ground`, the camera offset and the coins collected.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ACTION_NAMES = ("noop", "left", "right", "jump", "left+jump", "right+jump")
TILE, ROWS, SIZE = 8, 8, 64
PLAYER_W, PLAYER_H = 6, 8
RUN_SPEED, JUMP_SPEED, GRAVITY, MAX_FALL = 2.0, 5.5, 0.6, 6.0

# sky top, sky bottom, hills, ground, ground top, platform, coin, player body, flag
PALETTES = np.array(
    [
        [(92, 148, 252), (180, 210, 255), (60, 160, 80), (140, 90, 40), (70, 190, 60), (200, 120, 60),
         (255, 215, 0), (220, 30, 30), (250, 250, 250)],
        [(20, 20, 60), (70, 50, 120), (40, 40, 90), (90, 90, 100), (150, 150, 170), (170, 110, 200),
         (255, 240, 120), (240, 140, 40), (120, 255, 120)],
        [(250, 180, 120), (255, 230, 180), (200, 120, 80), (160, 110, 60), (230, 200, 90), (120, 80, 50),
         (255, 255, 140), (40, 90, 220), (220, 40, 40)],
        [(120, 200, 220), (220, 245, 250), (240, 250, 255), (110, 130, 150), (235, 245, 255), (90, 160, 200),
         (255, 200, 40), (200, 40, 160), (40, 40, 40)],
    ],
    dtype=np.uint8,
)


def generate_level(seed: int) -> dict[str, Any]:
    """Tiles (`ROWS`, width) of 0 empty / 1 ground / 2 platform, coin positions (px), palette, hills."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(48, 81))
    tiles = np.zeros((ROWS, width), dtype=np.uint8)
    heights = np.zeros(width, dtype=int)
    col, height = 0, 2
    while col < width:
        run = int(rng.integers(3, 9))
        gap = col > 6 and col < width - 8 and rng.random() < 0.3
        if gap:
            run = int(rng.integers(2, 4))
        else:
            height = int(np.clip(height + rng.integers(-1, 2), 1, 3))
        for c in range(col, min(col + run, width)):
            heights[c] = 0 if gap else height
        col += run
    heights[:6] = heights[6] if heights[6] else 2
    heights[-8:] = max(heights[-9], 1)
    for c in range(width):
        tiles[ROWS - heights[c]:, c] = 1
    coins = []
    for c in range(8, width - 8):
        if rng.random() < 0.12:  # floating platform
            length = int(rng.integers(2, 5))
            row = ROWS - max(heights[c:c + length].max(), 1) - int(rng.integers(3, 5))
            if row >= 1:
                tiles[row, c:c + length] = np.where(tiles[row, c:c + length] == 0, 2, tiles[row, c:c + length])
                coins += [((c + k) * TILE + 2, (row - 1) * TILE + 2) for k in range(length) if rng.random() < 0.5]
        elif heights[c] and rng.random() < 0.15:
            coins.append((c * TILE + 2, (ROWS - heights[c] - 1) * TILE + 2))
    hills = rng.uniform(0, 2 * np.pi, size=3)
    bg_width = width * TILE // 2 + SIZE
    clouds = [(float(rng.uniform(0, bg_width)), float(rng.uniform(4, 20)), float(rng.uniform(5, 10)))
              for _ in range(max(2, bg_width // 40))]  # (x, y, half-width) in background pixels
    return {"tiles": tiles, "coins": coins, "palette": PALETTES[seed % len(PALETTES)], "hills": hills,
            "clouds": clouds}


def _render_layers(level: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background strip (64, W/2+64, 3), tile layer (64, W, 3) and its opacity mask (64, W)."""
    tiles, pal = level["tiles"], level["palette"].astype(np.float32)
    width = tiles.shape[1] * TILE
    bg_w = width // 2 + SIZE
    t = np.linspace(0, 1, SIZE)[:, None, None]
    bg = np.broadcast_to((1 - t) * pal[0] + t * pal[1], (SIZE, bg_w, 3)).copy()
    xs = np.arange(bg_w)
    a, b, c = level["hills"]
    ys = np.arange(SIZE)[:, None]
    for cx, cy, r in level["clouds"]:
        cloud = ((xs[None, :] - cx) / r) ** 2 + ((ys - cy) / (0.45 * r)) ** 2 < 1
        bg[cloud] = 0.35 * bg[cloud] + 0.65 * 255
    hill = 40 + 6 * np.sin(xs / 23 + a) + 4 * np.sin(xs / 11 + b) + 3 * np.sin(xs / 37 + c)
    on_hill = ys > hill[None, :]
    bg[on_hill] = pal[2]
    bg[on_hill & (xs[None, :] % 6 < 2)] = pal[2] * 0.8  # stripes, so the parallax scroll shows
    fg = np.zeros((SIZE, width, 3), np.float32)
    solid = np.repeat(np.repeat(tiles, TILE, 0), TILE, 1)
    fg[solid == 1] = pal[3]
    # Bricks: mortar every 4 rows, vertical joints every 8 columns, offset by 4 on alternate courses.
    col = np.arange(width)[None, :]
    mortar = (ys % 4 == 3) | ((col + 4 * (ys // 4 % 2)) % TILE == 0)
    fg[(solid == 1) & mortar] = pal[3] * 0.65
    fg[solid == 2] = pal[5]
    # A lighter top row on ground tiles, a darker edge on platform tiles.
    top = (solid == 1) & (np.roll(solid, 1, axis=0) == 0)
    top[0] = False
    top = top | np.roll(top, 1, axis=0)
    fg[top] = pal[4]
    plat_edge = (solid == 2) & ((ys % TILE == TILE - 1) | (col % TILE == 0))
    fg[plat_edge] = pal[5] * 0.6
    return bg.astype(np.uint8), fg.astype(np.uint8), solid > 0


class PlatformerEnv(gym.Env):
    """The platformer; `reset(seed=s)` plays level `s`. Observations are the rendered frames."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode: str | None = "rgb_array", max_episode_steps: int = 500) -> None:
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(len(ACTION_NAMES))
        self.level: dict[str, Any] | None = None

    # -- simulation ---------------------------------------------------------------------------
    def _solid(self, x: float, y: float) -> bool:
        col, row = int(np.floor(x / TILE)), int(np.floor(y / TILE))
        tiles = self.level["tiles"]
        if col < 0 or col >= tiles.shape[1] or row >= ROWS:
            return False
        return row >= 0 and tiles[row, col] > 0

    def _collides(self, x: float, y: float) -> bool:
        return any(
            self._solid(px, py) for px in (x, x + PLAYER_W - 0.01) for py in (y, y + PLAYER_H / 2, y + PLAYER_H - 0.01)
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        level_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.level = generate_level(level_seed)
        self._bg, self._fg, self._mask = _render_layers(self.level)
        self.width_px = self.level["tiles"].shape[1] * TILE
        ground = ROWS - int(self.level["tiles"][:, 2].astype(bool).sum())
        self.x, self.y, self.vy = 2.0 * TILE, float(ground * TILE - PLAYER_H), 0.0
        self.facing, self.on_ground, self.steps = 1, True, 0
        self.coins_left = list(self.level["coins"])
        self.collected = 0
        return self._frame(), self._info()

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside range({self.action_space.n})")
        action = int(action)
        dx = {1: -RUN_SPEED, 2: RUN_SPEED, 4: -RUN_SPEED, 5: RUN_SPEED}.get(action, 0.0)
        if dx:
            self.facing = 1 if dx > 0 else -1
        if action in (3, 4, 5) and self.on_ground:
            self.vy = -JUMP_SPEED
        nx = float(np.clip(self.x + dx, 0, self.width_px - PLAYER_W))
        if not self._collides(nx, self.y):
            self.x = nx
        self.vy = min(self.vy + GRAVITY, MAX_FALL)
        ny = self.y + self.vy
        self.on_ground = False
        if self._collides(self.x, ny):
            if self.vy > 0:  # land on the tile below
                ny = np.floor((ny + PLAYER_H) / TILE) * TILE - PLAYER_H
                self.on_ground = True
            else:  # bump the ceiling
                ny = np.ceil(ny / TILE) * TILE
            self.vy = 0.0
        self.y = float(ny)
        self.steps += 1
        reward = 0.0
        keep = []
        for cx, cy in self.coins_left:
            if abs(cx + 2 - (self.x + PLAYER_W / 2)) < 5 and abs(cy + 2 - (self.y + PLAYER_H / 2)) < 6:
                reward += 1.0
                self.collected += 1
            else:
                keep.append((cx, cy))
        self.coins_left = keep
        terminated = False
        if self.y >= SIZE:
            reward, terminated = reward - 1.0, True
        elif self.x >= self.width_px - 3 * TILE:
            reward, terminated = reward + 5.0, True
        truncated = not terminated and self.steps >= self.max_episode_steps
        return self._frame(), reward, terminated, truncated, self._info()

    def _info(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "on_ground": self.on_ground, "camera": self._camera(),
                "coins": self.collected}

    # -- rendering ----------------------------------------------------------------------------
    def _camera(self) -> int:
        return int(np.clip(round(self.x) + PLAYER_W // 2 - SIZE // 2, 0, self.width_px - SIZE))

    def _frame(self) -> np.ndarray:
        cam = self._camera()
        pal = self.level["palette"]
        frame = self._bg[:, cam // 2: cam // 2 + SIZE].copy()
        mask = self._mask[:, cam: cam + SIZE]
        frame[mask] = self._fg[:, cam: cam + SIZE][mask]
        flag_x = self.width_px - 3 * TILE - cam
        if -2 < flag_x < SIZE:
            ground_row = ROWS - int(self.level["tiles"][:, -3].astype(bool).sum())
            top = ground_row * TILE
            frame[max(top - 20, 0): top, max(flag_x, 0): flag_x + 1] = 60
            frame[max(top - 20, 0): max(top - 14, 0), max(flag_x + 1, 0): max(flag_x + 6, 0)] = pal[8]
        for cx, cy in self.coins_left:
            sx = cx - cam
            if -4 < sx < SIZE:
                frame[cy: cy + 4, max(sx, 0): max(sx + 4, 0)] = pal[6]
        px, py = round(self.x) - cam, round(self.y)
        if py < SIZE:
            y0, y1 = max(py, 0), min(py + PLAYER_H, SIZE)
            frame[y0:y1, px: px + PLAYER_W] = pal[7]
            eye_x = px + (PLAYER_W - 2 if self.facing > 0 else 1)
            if 0 <= py + 2 < SIZE:
                frame[py + 2, eye_x] = 255
                frame[py + 2, eye_x + (1 if self.facing > 0 else -1)] = 0
        return frame

    def render(self) -> np.ndarray:
        return self._frame()


class ExplorationPolicy:
    """The policy that records the Genie dataset: a fresh random action every step, biased to the right so
    levels get explored; a jump is chosen only when the player stands on the ground (in the air the same
    direction without the jump is pressed), so recorded jumps have a visible effect.

    Actions are not held over steps on purpose: when they persist, the motion so far predicts the next
    one, and the latent action model we trained on such play learned "keep going" / "turn around"
    (relative to the last motion) instead of left and right."""

    #                    noop  left  right jump  l+j   r+j
    WEIGHTS = np.array([0.1, 0.15, 0.45, 0.1, 0.05, 0.15])

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray, info: dict) -> int:
        action = int(self.rng.choice(len(self.WEIGHTS), p=self.WEIGHTS))
        if action >= 3 and not info["on_ground"]:
            return {3: 0, 4: 1, 5: 2}[action]
        return action
