from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import wm_hub.envs  # noqa: F401 - registers wm_hub/Physics-v0
from wm_hub.envs.physics import COLOURS, MAX_OBJECTS, PhysicsEnv


def test_env_passes_gymnasium_checker():
    check_env(PhysicsEnv(), skip_render_check=True)


def test_scenes_are_seeded_and_captioned_from_the_simulation():
    env = gym.make("wm_hub/Physics-v0")
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=5)
        frames = [obs]
        for i in range(20):
            obs, _, _, _, info = env.step(np.array([np.sin(i / 3)], np.float32))
            frames.append(obs)
        runs.append((np.stack(frames), info))
    (a, info_a), (b, info_b) = runs
    assert a.shape == (21, 64, 64, 3) and np.array_equal(a, b) and info_a["caption"] == info_b["caption"]
    caption = info_a["caption"]
    assert any(colour in caption for colour in COLOURS) and ("falls" in caption or "bounces" in caption)
    states = info_a["object_states"].reshape(MAX_OBJECTS, 5)
    present = env.unwrapped.objects
    assert np.allclose(states[0, :2], present[0]["body"].position)
    assert all(0 <= s[0] <= 64 and 0 <= s[1] <= 64 for s in states[: len(present)]), "an object left the scene"


def test_paddle_moves_with_the_action():
    env = PhysicsEnv()
    _, info = env.reset(seed=0)
    x0 = info["paddle_x"]
    direction = 1.0 if x0 < 32 else -1.0
    for _ in range(3):
        _, _, _, _, info = env.step([direction])
    assert (info["paddle_x"] - x0) * direction > 10
    with pytest.raises(ValueError, match=r"the paddle.s velocity, 1 number"):
        env.step([0.1, 0.2])


def test_physics_dataset_has_clip_captions_and_states(tmp_path):
    from wm_hub.cli import main
    from wm_hub.data import load_dataset_dir

    assert main(["data", "make", "physics", "--num-clips", "3", "--frames", "9", "--out", str(tmp_path / "p")]) == 0
    ds = load_dataset_dir(tmp_path / "p").with_format("numpy")
    assert len(ds) == 27 and ds[0]["object_states"].shape == (MAX_OBJECTS * 5,)
    episodes, captions = np.asarray(ds["episode_index"]), list(ds["caption"])
    for e in range(3):
        rows = np.flatnonzero(episodes == e)
        assert len({captions[r] for r in rows}) == 1, "one caption per clip"
    env = PhysicsEnv()
    env.reset(seed=1)
    replay = [env.step(ds[int(r)]["action"])[4] for r in np.flatnonzero(episodes == 1)[:-1]]
    assert replay[-1]["caption"] == captions[np.flatnonzero(episodes == 1)[0]]
    from wm_hub.data import ClipDataset

    clips = ClipDataset(tmp_path / "p", clip_len=9)
    assert len(clips) == 3 and clips[1]["caption"] == captions[np.flatnonzero(episodes == 1)[0]]
    import torch

    for source in (tmp_path / "p", load_dataset_dir(tmp_path / "p").select([1, 0, 2] + list(range(3, 27)))):
        kept, read = ClipDataset(source, clip_len=5, in_memory=True), ClipDataset(source, clip_len=5)
        for index in (0, len(read) - 1):
            a, b = kept[index], read[index]
            assert a.keys() == b.keys() and torch.equal(a["frames"], b["frames"]) and a["caption"] == b["caption"]
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(clips, batch_size=2)))
    assert batch["frames"].shape == (2, 9, 3, 64, 64) and len(batch["caption"]) == 2


def test_parallel_recording_is_the_same_dataset():
    from datasets.fingerprint import get_temporary_cache_files_directory

    from wm_hub.envs.physics import record_physics_clips

    one = record_physics_clips(5, seed=3, frames=9)
    parts = record_physics_clips(5, seed=3, frames=9, workers=2)  # clips 0-1 and 2-4, the paddle fast-forwarded
    assert one.features == parts.features and len(one) == len(parts) == 45
    for column in one.column_names:
        assert np.array_equal(np.asarray(one[column]), np.asarray(parts[column])), column
    # the parts stay on disk, memory-mapped, in datasets' temporary cache directory (removed at exit)
    cache = get_temporary_cache_files_directory()
    assert parts.cache_files and all(f["filename"].startswith(cache) for f in parts.cache_files)
    with pytest.raises(ValueError, match="workers >= 1"):
        record_physics_clips(5, workers=0)
