"""The PointMaze env (DINO-WM): walls block, momentum carries, tasks are valid, data records."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import wm_hub.envs  # noqa: F401  (registers wm_hub/PointMaze-v0)
from wm_hub.cli import main as cli
from wm_hub.data import load_dataset_dir
from wm_hub.envs.navigation import AGENT, WALL
from wm_hub.envs.point_maze import CELL, MAX_SPEED, MIN_TASK_DISTANCE, PointMazeEnv, PointMazeExplorationPolicy


def test_the_middle_bar_blocks_and_the_u_lets_through():
    env = PointMazeEnv()
    env.reset(options={"start": (0.3, 0.3)})  # top-left arm
    for _ in range(40):
        _, _, _, _, info = env.step((0, 1))  # down: the middle bar (row 2, columns 0-2) is in the way
    assert info["proprio"][1] < 2 * CELL and info["proprio"][3] == 0.0  # stopped, no velocity into the wall
    for _ in range(40):
        env.step((1, 0))  # right, along the arm to the U's bend
    for _ in range(40):
        _, _, _, _, info = env.step((0, 1))  # then down past the bar
    assert info["proprio"][0] > 3 * CELL and info["proprio"][1] > 3 * CELL


def test_momentum_builds_up_and_decays():
    env = PointMazeEnv()
    _, info = env.reset(options={"start": (0.3, 0.3)})
    speeds = []
    for _ in range(5):
        _, _, _, _, info = env.step((1, 0))
        speeds.append(info["proprio"][2])
    assert all(b > a for a, b in zip(speeds, speeds[1:], strict=False)) and speeds[-1] <= MAX_SPEED
    _, _, _, _, coasting = env.step((0, 0))
    assert 0 < coasting["proprio"][2] < speeds[-1] and coasting["proprio"][0] > info["proprio"][0]


def test_frames_info_tasks_and_bad_input():
    env = gym.make("wm_hub/PointMaze-v0").unwrapped
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and info["proprio"].shape == (4,)
    ys, xs = np.nonzero((obs == AGENT).all(-1))
    assert abs(xs.mean() / 64 - info["proprio"][0]) < 0.03 and abs(ys.mean() / 64 - info["proprio"][1]) < 0.03
    assert (obs[32, 10] == WALL).all() and (obs[2, 32] == WALL).all()  # the middle bar and the border
    for seed in range(20):
        task = env.sample_task(seed)
        assert np.linalg.norm(task["start"] - task["goal"]) >= MIN_TASK_DISTANCE
        assert task["goal_proprio"].tolist() == [*task["goal"], 0.0, 0.0]
        obs, info = env.reset_to_task(task)
        assert np.allclose(info["proprio"][:2], task["start"]) and not env.goal_reached(task, info)
        goal = env.goal_image(task)
        ys, xs = np.nonzero((goal == AGENT).all(-1))
        assert abs(xs.mean() / 64 - task["goal"][0]) < 0.03
    with pytest.raises(ValueError, match="not a free position"):
        env.reset(options={"start": (0.3, 0.5)})  # inside the middle bar
    with pytest.raises(ValueError, match="2-D action"):
        env.step(np.zeros(4))


def test_data_make_records_frames_actions_and_proprio(tmp_path, capsys):
    assert cli(["data", "make", "dino-wm-pointmaze", "--episodes", "2", "--max-steps", "10",
                "--out", str(tmp_path / "maze")]) == 0
    ds = load_dataset_dir(tmp_path / "maze")
    assert len(ds) == 2 * 11 and set(ds["episode_index"]) == {0, 1}  # one row per step, the last without action
    assert np.asarray(ds["proprio"]).shape == (22, 4) and np.asarray(ds["action"]).shape == (22, 2)


def test_exploration_policy_walks_or_runs_at_free_cells():
    """Half the episodes are runs at points of free cells, which carry the agent along the U (and into its walls)."""
    env, policy = PointMazeEnv(), PointMazeExplorationPolicy(0)
    modes = []
    for _ in range(20):
        policy.reset()
        modes.append(policy.mode)
    assert set(modes) == {"walk", "runs"}
    targets = np.array([policy.draw_target(np.zeros(2), {}) for _ in range(200)])
    assert all(env.is_free(t) for t in targets)
    obs, info = env.reset(seed=0, options={"start": (0.3, 0.7)})  # the U's lower arm
    policy.mode, policy.target, policy.steps_left = "runs", np.array((0.3, 0.3)), 10**6  # a run at its upper arm
    for _ in range(100):
        obs, _, _, _, info = env.step(policy(obs, info))
    assert info["proprio"][0] > 0.6 or info["proprio"][1] > 0.6  # stopped by the bar: it cannot go round
