from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from wm_hub.cli import main
from wm_hub.data import ClipDataset, frames_to_tensor, load_dataset_dir, record_episodes, save_dataset, tensor_to_frames


@pytest.fixture(scope="module")
def cartpole():
    return record_episodes("CartPole-v1", 3, seed=7, image_size=(32, 48), progress=False)


def test_recorder_round_trips_frames_and_actions(cartpole, tmp_path):
    save_dataset(cartpole, tmp_path / "ds")
    ds = load_dataset_dir(tmp_path / "ds").with_format("numpy")
    assert ds.column_names == [
        "episode_index", "step_index", "observation", "state", "action", "reward", "terminated", "truncated", "is_last",
    ]
    # Replay the recorded actions in a fresh env: the frames and states must be the same.
    from PIL import Image

    env = gym.make("CartPole-v1", render_mode="rgb_array")
    for episode in range(3):
        rows = np.flatnonzero(np.asarray(ds["episode_index"]) == episode)
        obs, _ = env.reset(seed=7 + episode)
        for i, row in enumerate(rows):
            frame = np.asarray(Image.fromarray(env.render()).resize((48, 32), Image.BILINEAR))
            np.testing.assert_array_equal(ds[int(row)]["observation"].astype(np.uint8), frame)
            np.testing.assert_allclose(ds[int(row)]["state"], obs, rtol=1e-6)
            assert ds[int(row)]["step_index"] == i
            if ds[int(row)]["is_last"]:
                assert i == len(rows) - 1
                break
            obs, reward, terminated, truncated, _ = env.step(int(ds[int(row)]["action"]))
            assert ds[int(row)]["reward"] == reward
            assert ds[int(row)]["terminated"] == terminated and ds[int(row)]["truncated"] == truncated
        assert ds[int(rows[-2])]["terminated"] or ds[int(rows[-2])]["truncated"]


def test_recorder_max_steps_and_box_actions():
    ds = record_episodes("Pendulum-v1", 2, max_steps=5, seed=0, image_size=(16, 16), progress=False)
    assert len(ds) == 2 * 6
    first = ds.with_format("numpy")[0]
    assert first["action"].shape == (1,) and first["action"].dtype == np.float32
    assert first["observation"].shape == (16, 16, 3)


def test_recorder_converting_a_few_episodes_at_a_time_gives_the_same_dataset(monkeypatch):
    from wm_hub.data import recorder
    from wm_hub.envs.physics import PhysicsEnv

    def record():
        return record_episodes(PhysicsEnv(), 3, max_steps=6, seed=3, info_keys=("object_states",),
                               episode_captions=True, progress=False)

    whole = record()
    monkeypatch.setattr(recorder, "FLUSH_ROWS", 5)  # a conversion after every episode (7 rows each)
    parts = record()
    assert parts.features == whole.features and len(parts) == len(whole) == 21
    assert parts.to_dict() == whole.to_dict()


def test_recorder_needs_rgb_array():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        record_episodes(gym.make("CartPole-v1"), 1, progress=False)


def test_clip_dataset_shapes_and_frame_skip(cartpole):
    clips = ClipDataset(cartpole, clip_len=4, frame_skip=2)
    item = clips[0]
    assert item["frames"].shape == (4, 3, 32, 48) and item["frames"].dtype == torch.float32
    assert item["frames"].min() >= -1 and item["frames"].max() <= 1
    assert item["actions"].shape == (4, 2) and item["rewards"].shape == (4, 2)
    data = cartpole.with_format("numpy")
    start = int(clips.starts[5])
    item = clips[5]
    expected = frames_to_tensor(np.stack([data[start + 2 * t]["observation"] for t in range(4)]).astype(np.uint8))
    torch.testing.assert_close(item["frames"], expected)
    # Actions past the episode's end are zeros.
    episodes = np.asarray(data["episode_index"])
    expected_actions = [
        int(data[start + k]["action"]) if episodes[start + k] == episodes[start] else 0 for k in range(8)
    ]
    assert item["actions"].reshape(-1).tolist() == expected_actions
    # Every clip lies inside one episode.
    for s in clips.starts:
        assert episodes[s] == episodes[s + 6]
    assert clips.episode_lengths.tolist() == np.bincount(episodes)[np.unique(episodes)].tolist()


def test_clip_dataset_too_short(cartpole):
    with pytest.raises(ValueError, match="no episode has the 1001 rows"):
        ClipDataset(cartpole, clip_len=1001)


def test_frame_conversion_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 5, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tensor_to_frames(frames_to_tensor(frames)), frames)
    with pytest.raises(ValueError, match="expected uint8"):
        frames_to_tensor(frames.astype(np.float32))


def test_missing_dataset_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="wm-hub data make"):
        load_dataset_dir(tmp_path / "nope")


def test_cli_data_make(tmp_path, capsys):
    assert main(["data", "make", "gym", "--env-id", "CartPole-v1", "--episodes", "2", "--max-steps", "4",
                 "--image-size", "16", "--out", str(tmp_path / "cp")]) == 0
    assert '"rows": 10' in capsys.readouterr().out
    assert len(load_dataset_dir(tmp_path / "cp")) == 10


def test_encoded_clips_encode_once_and_reuse_their_cache_only_for_the_same_key_and_rows(tmp_path):
    from wm_hub.data import EncodedClips, encoder_key
    from wm_hub.envs.physics import record_physics_clips

    clips = ClipDataset(record_physics_clips(3, frames=5), clip_len=5)
    calls = []

    def encode(video):  # (B, T, C, H, W) -> (B, T, C)
        calls.append(len(video))
        return video.mean(dim=(3, 4))

    encoder = torch.nn.Linear(2, 2)
    key = encoder_key(encoder, "physics", 5)
    first = EncodedClips(clips, encode, batch_size=2, cache=tmp_path / "c.safetensors", key=key)
    assert calls == [2, 1] and len(first) == 3
    item = first[1]
    assert torch.allclose(item["latents"], clips[1]["frames"].mean(dim=(2, 3)))
    assert item["caption"] == clips[1]["caption"]
    again = EncodedClips(clips, encode, cache=tmp_path / "c.safetensors", key=key)
    assert calls == [2, 1] and torch.equal(again.latents, first.latents) and again.captions == first.captions
    with torch.no_grad():
        encoder.weight.add_(1.0)  # a retrained encoder: another key, encoded afresh
    assert encoder_key(encoder, "physics", 5) != key
    EncodedClips(clips, encode, cache=tmp_path / "c.safetensors", key=encoder_key(encoder, "physics", 5))
    assert calls == [2, 1, 3]
    # Other rows (a dataset regenerated under the same name), same key and count: encoded afresh
    other = ClipDataset(record_physics_clips(3, seed=7, frames=5), clip_len=5)
    EncodedClips(other, encode, cache=tmp_path / "c.safetensors", key=encoder_key(encoder, "physics", 5))
    assert calls == [2, 1, 3, 3]


def test_clip_fingerprint_tells_regenerated_data_apart(tmp_path):
    from wm_hub.envs.camera_scene import record_camera_clips

    save_dataset(record_camera_clips(2, frames=3), tmp_path / "a")
    first = ClipDataset(tmp_path / "a", clip_len=3).fingerprint
    assert ClipDataset(tmp_path / "a", clip_len=3).fingerprint == first  # stable across loads
    save_dataset(record_camera_clips(2, seed=5, frames=3), tmp_path / "a")  # other scenes, same folder
    assert ClipDataset(tmp_path / "a", clip_len=3).fingerprint != first
