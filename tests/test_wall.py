"""The Wall env (DINO-WM): the wall blocks, the door lets through, tasks cross the wall, data records."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import wm_hub.envs  # noqa: F401  (registers wm_hub/Wall-v0)
from wm_hub.envs.navigation import AGENT, SUCCESS_RADIUS
from wm_hub.envs.wall import SPEED, WALL_X, WallEnv, WallExplorationPolicy


def walk(env: WallEnv, action, steps: int) -> np.ndarray:
    for _ in range(steps):
        env.step(np.asarray(action, dtype=np.float32))
    return env.pos.copy()


def test_wall_blocks_and_door_lets_through():
    env = WallEnv()
    env.reset(options={"door_y": 0.5, "start": (0.2, 0.2)})  # level with the wall, not the door
    assert walk(env, (1, 0), 30)[0] < WALL_X  # stopped by the wall
    env.reset(options={"door_y": 0.5, "start": (0.2, 0.5)})  # level with the door
    assert walk(env, (1, 0), 30)[0] > WALL_X
    env.reset(options={"door_y": 0.75, "start": (0.2, 0.3)})
    end = walk(env, (1, -1), 30)  # slides down along the wall to the room's edge
    assert WALL_X - 0.11 < end[0] < WALL_X and end[1] < 0.05


def test_frames_info_and_bad_input():
    env = gym.make("wm_hub/Wall-v0").unwrapped
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["proprio"].shape == (2,) and 0.25 <= info["door_y"] <= 0.75
    ys, xs = np.nonzero((obs == AGENT).all(-1))
    assert abs(xs.mean() / 64 - info["proprio"][0]) < 0.03 and abs(ys.mean() / 64 - info["proprio"][1]) < 0.03
    with pytest.raises(ValueError, match="2-D action"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="not a free position"):
        env.reset(options={"door_y": 0.5, "start": (0.5, 0.1)})  # inside the wall


def test_tasks_put_start_and_goal_on_opposite_sides():
    env = WallEnv()
    for seed in range(20):
        task = env.sample_task(seed)
        assert (task["start"][0] - WALL_X) * (task["goal"][0] - WALL_X) < 0
        assert np.linalg.norm(task["start"] - task["goal"]) > SUCCESS_RADIUS
        env.reset(options={"door_y": task["door_y"], "start": task["start"]})  # a free position
    assert np.array_equal(env.sample_task(3)["goal"], WallEnv().sample_task(3)["goal"])


def test_path_distances_go_through_the_door():
    env = WallEnv()
    env.reset(options={"door_y": 0.5, "start": (0.2, 0.5)})
    goal = np.array((0.2, 0.2))
    same_side, across, top_across = env.path_distances(goal, [(0.2, 0.8), (0.8, 0.5), (0.8, 0.2)])
    assert same_side == pytest.approx(0.6, abs=0.03)  # a straight line
    assert across == pytest.approx(np.hypot(0.3, 0.3) + 0.3, abs=0.05)  # to the door, then on
    assert top_across > 2 * np.hypot(0.3, 0.3) - 0.05 > 0.6  # straight across would be 0.6: it has to detour
    assert env.path_distances(goal, [goal])[0] == 0


def test_exploration_policy_crosses_the_wall_in_some_episodes():
    env, policy = WallEnv(), WallExplorationPolicy(0)
    crossed = 0
    for episode in range(20):
        obs, info = env.reset(seed=episode)
        policy.reset()
        side = np.sign(info["proprio"][0] - WALL_X)
        for _ in range(100):
            obs, _, _, _, info = env.step(policy(obs, info))
        crossed += np.sign(info["proprio"][0] - WALL_X) != side
    assert 5 <= crossed <= 15


def test_exploration_policy_runs_into_the_wall():
    """A third of the episodes are straight runs at the other side: the centre wall stops many of their moves
    (with only the walk and door episodes, about 5% of all steps)."""
    env, policy = WallEnv(), WallExplorationPolicy(0)
    modes, stopped, steps = set(), 0, 0
    for episode in range(30):
        obs, info = env.reset(seed=episode)
        policy.reset()
        modes.add(policy.mode)
        for _ in range(100):
            action = policy(obs, info)
            before = env.pos.copy()
            obs, _, _, _, info = env.step(action)
            at_wall = abs(before[0] - WALL_X) < 0.1
            stopped += at_wall and abs(env.pos[0] - before[0]) < 0.2 * abs(action[0]) * SPEED
            steps += 1
    assert modes == {"walk", "door", "runs"}
    assert stopped / steps > 0.1
