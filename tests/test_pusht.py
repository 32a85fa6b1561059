"""PushT (gym-pusht, used as is) behind the planning-task interface: relative actions, frames, proprio,
reachable goals, DINO-WM's success criterion, recording."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("gym_pusht")

import wm_hub.envs  # noqa: E402, F401  (registers wm_hub/PushT-v0)
from wm_hub.cli import main as cli  # noqa: E402
from wm_hub.data import load_dataset_dir  # noqa: E402
from wm_hub.envs.pusht import BOARD, GOAL_STEPS, REACH  # noqa: E402


def test_frames_relative_actions_and_bad_input():
    env = gym.make("wm_hub/PushT-v0").unwrapped
    obs, info = env.reset(options={"state": [100, 100, 300, 300, 0.0]})
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert np.allclose(info["proprio"], np.array([100, 100]) / BOARD) and info["state"].shape == (5,)
    _, _, _, _, moved = env.step((1.0, 0.0))  # the target is REACH to the right: the agent heads there
    step = moved["state"][:2] - info["state"][:2]
    assert 0 < step[0] <= REACH + 1 and abs(step[1]) < 1
    with pytest.raises(ValueError, match="2-D relative action"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="PushT state"):
        env.reset(options={"state": [1, 2, 3]})


def test_tasks_are_reachable_and_success_is_dino_wms_criterion():
    env = gym.make("wm_hub/PushT-v0").unwrapped
    task = env.sample_task(7)
    assert task["start"].shape == task["goal"].shape == (5,) and task["goal_proprio"].shape == (2,)
    obs, info = env.reset_to_task(task)
    assert not env.goal_reached(task, info)
    assert task["actions"].shape == (GOAL_STEPS, 2)
    for action in task["actions"]:  # the recording policy's actions that drew the goal, replayed
        obs, _, _, _, info = env.step(action)
    assert env.goal_reached(task, info)
    kinds = {env.sample_task(seed)["kind"] for seed in range(1_000_000, 1_000_010)}
    assert kinds == {"block moved", "block still"}  # the recording policy pushes in half its episodes
    near = {"state": task["goal"] + np.array([10, 0, 0, 10, 0.3])}  # 14 units, 0.3 rad: within
    far = {"state": task["goal"] + np.array([0, 0, 0, 0, 0.5])}  # 0.5 rad > pi / 9
    assert env.goal_reached(task, near) and not env.goal_reached(task, far)
    wrapped = {"state": task["goal"] + np.array([0, 0, 0, 0, 2 * np.pi - 0.1])}  # angles wrap around
    assert env.goal_reached(task, wrapped)
    assert env.goal_image(task).shape == (64, 64, 3)


def test_data_make_records_pushes(tmp_path, capsys):
    assert cli(["data", "make", "dino-wm-pusht", "--episodes", "2", "--max-steps", "8",
                "--out", str(tmp_path / "pusht")]) == 0
    ds = load_dataset_dir(tmp_path / "pusht")
    assert len(ds) == 18 and np.asarray(ds["proprio"]).shape == (18, 2)
    assert np.asarray(ds["observation"][0]).shape == (64, 64, 3)
