from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import wm_hub.envs  # noqa: F401 - registers wm_hub/Platformer-v0
from wm_hub.envs.platformer import ACTION_NAMES, ExplorationPolicy, PlatformerEnv, generate_level


def test_env_passes_gymnasium_checker():
    check_env(PlatformerEnv(), skip_render_check=True)


def test_levels_are_seeded_and_varied():
    a, b = generate_level(3), generate_level(3)
    assert np.array_equal(a["tiles"], b["tiles"]) and a["coins"] == b["coins"]
    assert not np.array_equal(generate_level(3)["tiles"][:, :48], generate_level(4)["tiles"][:, :48])
    env = gym.make("wm_hub/Platformer-v0")
    f1, _ = env.reset(seed=11)
    f2, _ = env.reset(seed=11)
    assert f1.shape == (64, 64, 3) and f1.dtype == np.uint8 and np.array_equal(f1, f2)


def _settle(env):
    obs, info = env.reset(seed=5)
    for _ in range(10):
        obs, _, _, _, info = env.step(0)
    return obs, info


def test_actions_have_their_effect():
    env = PlatformerEnv()
    _, info = _settle(env)
    assert info["on_ground"]
    x0 = info["x"]
    for _ in range(3):
        obs, _, _, _, info = env.step(ACTION_NAMES.index("right"))
    assert info["x"] == x0 + 6
    _, _, _, _, info = env.step(ACTION_NAMES.index("left"))
    assert info["x"] == x0 + 4
    y0 = info["y"]
    _, _, _, _, info = env.step(ACTION_NAMES.index("jump"))
    assert info["y"] < y0 and not info["on_ground"]
    for _ in range(40):
        _, _, term, _, info = env.step(0)
        if term:
            break
    assert info["on_ground"] or term


def test_scrolling_moves_the_picture():
    env = PlatformerEnv()
    obs, info = _settle(env)
    for _ in range(20):
        obs, _, _, _, info = env.step(ACTION_NAMES.index("right"))
    frames = [obs]
    obs, _, _, _, info2 = env.step(ACTION_NAMES.index("right"))
    assert info2["camera"] == info["camera"] + 2 and not np.array_equal(obs, frames[0])


def test_bad_action():
    env = PlatformerEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"range\(6\)"):
        env.step(6)


def test_exploration_policy_jumps_only_from_the_ground():
    env = PlatformerEnv()
    policy = ExplorationPolicy(0)
    obs, info = env.reset(seed=1)
    jumps = 0
    for _ in range(300):
        action = policy(obs, info)
        if action >= 3:
            assert info["on_ground"]
            jumps += 1
        obs, _, term, trunc, info = env.step(action)
        if term or trunc:
            obs, info = env.reset(seed=2)
    assert jumps > 5
