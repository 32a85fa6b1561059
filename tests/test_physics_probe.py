"""Objects found by colour and captions checked against the motion: the scorer of generated physics video."""

from __future__ import annotations

import numpy as np
import pytest

from wm_hub.envs.physics import PhysicsEnv, ScriptedPaddle
from wm_hub.envs.physics_probe import ObjectClause, caption_agreement, caption_facts, locate_objects, parse_caption


def test_parse_caption():
    clauses = parse_caption("a red ball falls, bounces and rolls left; a blue box stays still; "
                            "the paddle pushes the blue box")
    assert clauses == [ObjectClause("red", "ball", ["falls", "bounces", "rolls left"]),
                       ObjectClause("blue", "box", ["stays still"])]


def episode(seed: int, frames: int = 33) -> tuple[np.ndarray, str, np.ndarray]:
    env, policy = PhysicsEnv(), ScriptedPaddle(seed)
    obs, info = env.reset(seed=seed)
    video, states = [obs], [info["object_states"]]
    for _ in range(frames - 1):
        obs, _, _, _, info = env.step(policy(obs, info))
        video.append(obs)
        states.append(info["object_states"])
    return np.stack(video), info["caption"], np.stack(states)


def test_real_clips_agree_with_their_captions_and_frozen_ones_do_not():
    real, frozen = [0, 0], [0, 0]
    for seed in range(1_000_000, 1_000_012):
        video, caption, states = episode(seed)
        for total, frames in ((real, video), (frozen, np.repeat(video[:1], len(video), axis=0))):
            seen, stated = caption_agreement(frames, caption)
            total[0] += seen
            total[1] += stated
    assert real[0] / real[1] >= 0.9 and frozen[0] / frozen[1] < 0.5


def test_caption_facts_by_kind():
    """One "object" fact per named object, one "motion" fact per verb; a missing object's verbs fail."""
    video, caption, _ = episode(1_000_001)
    clauses = parse_caption(caption)
    facts = caption_facts(video, caption)
    assert [kind for kind, _ in facts] == [k for c in clauses for k in ["object"] + ["motion"] * len(c.verbs)]
    assert caption_agreement(video, caption) == (sum(h for _, h in facts), len(facts))
    empty = np.repeat(video[:, :1, :1], 64, axis=1).repeat(64, axis=2)  # every frame the background colour
    assert not any(holds for _, holds in caption_facts(empty, caption))


def test_locate_objects_follows_the_simulated_positions():
    video, caption, states = episode(1_000_003)
    clause = parse_caption(caption)[0]
    track = locate_objects(video, [clause.colour])[clause.colour]
    xy = states.reshape(len(video), -1, 5)[:, :, :2]  # (T, objects, 2)
    slot = np.nanargmin(np.linalg.norm(xy[0] - track[0], axis=-1))  # the object of that colour
    error = np.linalg.norm(track - xy[:, slot], axis=-1)
    assert np.nanmedian(error) < 2.0
    with pytest.raises(ValueError, match="expected uint8 frames"):
        locate_objects(video[0])
