"""Reading the physics scene back from pixels: objects found by their colour, and captions checked
against the motion seen. Used to score generated video (`wm-hub eval` of the Cosmos-style world models).

The colours, shapes and caption grammar are `wm_hub.envs.physics`'s: "a red ball falls and bounces; a
blue box slides left; the paddle pushes the blue box". Motion clauses are checked (falls, bounces,
rolls / slides left or right, stays still), as is each named object's presence; contact events ("hits",
"pushes") are not, as colour centroids cannot tell a touch from a near miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from wm_hub.envs.physics import COLOURS, SHAPES

MOVE_PX = 8.0  # as the caption generator: a change of more than 8 px is motion
HARD_PX = 3.0  # a landing is hard when the fall was faster than this (px per frame) and stopped by as much
CLAUSE = re.compile(rf"^a ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) (.+)$")


@dataclass
class ObjectClause:
    """One object's part of a caption: its colour, shape and motion verbs ("falls", "rolls left", ...)."""

    colour: str
    shape: str
    verbs: list[str] = field(default_factory=list)


def parse_caption(caption: str) -> list[ObjectClause]:
    """The object clauses of a physics caption (contact events are skipped)."""
    clauses = []
    for part in caption.split(";"):
        match = CLAUSE.match(part.strip())
        if match:
            colour, shape, rest = match.groups()
            verbs = [v.strip() for v in re.split(r", | and ", rest) if v.strip()]
            clauses.append(ObjectClause(colour, shape, verbs))
    return clauses


def locate_objects(frames: np.ndarray, colours: list[str] | None = None, tolerance: float = 40.0,
                   min_pixels: int = 4) -> dict[str, np.ndarray]:
    """Centroids `(T, 2)` (x, y in pixels; NaN where not seen) of each palette colour in uint8 frames
    `(T, H, W, 3)`: the pixels within `tolerance` (RGB distance) of the colour, at least `min_pixels`."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got shape {frames.shape}")
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    found = {}
    for name in colours or list(COLOURS):
        near = np.linalg.norm(frames - np.asarray(COLOURS[name], np.float32), axis=-1) < tolerance  # (T, H, W)
        count = near.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.stack([(near * xs).sum(axis=(1, 2)) / count, (near * ys).sum(axis=(1, 2)) / count], axis=-1)
        centre[count < min_pixels] = np.nan
        found[name] = centre
    return found


def _verb_holds(verb: str, track: np.ndarray) -> bool:
    """Does the motion `track` `(T, 2)` (NaN-free rows only) show `verb`?"""
    start, end = track[0], track[-1]
    dx, dy = end - start
    if verb == "falls":
        return dy > MOVE_PX
    if verb == "bounces":  # the generator's "bounces" is a hard landing: falling fast, then stopped short
        vy = np.diff(track[:, 1])  # px per frame, down > 0
        return bool(np.any((vy[:-1] > HARD_PX) & (vy[:-1] - vy[1:] > HARD_PX)))
    if verb == "stays still":
        return abs(dx) <= MOVE_PX and dy <= MOVE_PX
    direction = verb.split()[-1]
    if direction in ("left", "right"):
        return dx < -MOVE_PX if direction == "left" else dx > MOVE_PX
    raise ValueError(f"unknown verb {verb!r} in a physics caption")


def caption_facts(frames: np.ndarray, caption: str) -> list[tuple[str, bool]]:
    """Each fact of `caption` checked in uint8 frames `(T, H, W, 3)`, as (kind, holds): kind "object" for each
    named object, which must be visible in at least half the frames, and "motion" for each of its verbs, which
    must show in its colour's track (a missing object's verbs do not hold)."""
    clauses = parse_caption(caption)
    tracks = locate_objects(frames, [c.colour for c in clauses])
    facts = []
    for clause in clauses:
        track = tracks[clause.colour]
        visible = ~np.isnan(track).any(axis=1)
        present = bool(visible.sum() >= max(2, len(track) / 2))
        facts.append(("object", present))
        facts.extend(("motion", present and _verb_holds(v, track[visible])) for v in clause.verbs)
    return facts


def caption_agreement(frames: np.ndarray, caption: str) -> tuple[int, int]:
    """(facts seen, facts stated) of `caption` in uint8 frames `(T, H, W, 3)` (see `caption_facts`)."""
    facts = caption_facts(frames, caption)
    return sum(holds for _, holds in facts), len(facts)
