"""Camera and action control: Plücker rays against hand-computed ones, the camera scene and the pusher agent,
per-latent-frame grouping, extending a DiT (it starts as the base model), LoRA merged back, the pipeline's
`camera=` / `actions=` and its errors, and the control evaluation on tiny parts of both kinds of world model."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from tests.conftest import tiny_ar_parts, tiny_world_parts
from wm_hub.envs.camera_scene import MOVE, CameraSceneEnv, intrinsics, look_at, record_camera_clips
from wm_hub.envs.physics import FPS, PUSHER_SPEED, PhysicsEnv, record_physics_clips
from wm_hub.layers.camera import plucker_embedding, plucker_rays
from wm_hub.models.cosmos.finetuning_cosmos import (
    action_condition,
    add_lora,
    camera_condition,
    control_inputs,
    extend_for_control,
    latent_frame_index,
    merge_lora,
)
from wm_hub.models.cosmos.pipeline_cosmos import ARVideo2WorldPipeline, Video2WorldPipeline
from wm_hub.models.cosmos.transformer_cosmos import WorldTransformer3DModel


def test_plucker_rays_by_hand():
    K = torch.tensor([[2.0, 0, 1], [0, 2, 1], [0, 0, 1]])
    pose = torch.eye(4)
    pose[:3, :3] = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])  # camera z -> world x, x -> y, y -> z
    pose[:3, 3] = torch.tensor([1.0, 2, 3])
    rays = plucker_rays(K, pose, 2, 2)
    assert rays.shape == (6, 2, 2)
    # pixel (u=1, v=0), centre (1.5, 0.5): K^-1 [1.5, 0.5, 1] = (0.25, -0.25, 1); R of it = (1, 0.25, -0.25)
    norm = np.sqrt(1.125)
    d = torch.tensor([1.0, 0.25, -0.25]) / norm
    m = torch.tensor([-1.25, 3.25, -1.75]) / norm  # (1, 2, 3) x (1, 0.25, -0.25)
    assert torch.allclose(rays[:, 0, 1], torch.cat([d, m]), atol=1e-6)
    assert torch.allclose(rays[:3].norm(dim=0), torch.ones(2, 2))
    # The moment does not depend on where the origin sits along the ray: the centre ray of a camera slid
    # along its own axis is the same line
    K64, forward = torch.as_tensor(intrinsics(64), dtype=torch.float32), pose.clone()
    K64[:2, 2] = 32.5  # the principal point at the centre of pixel (32, 32)
    forward[:3, 3] += 0.7 * pose[:3, 2]
    a, b = plucker_rays(K64, pose, 64, 64), plucker_rays(K64, forward, 64, 64)
    assert torch.allclose(a[:, 32, 32], b[:, 32, 32], atol=1e-5) and not torch.allclose(a, b, atol=1e-3)
    batch = plucker_embedding(K64.expand(2, 3, 3, 3), pose.expand(2, 3, 4, 4), 64, 8)
    assert batch.shape == (2, 3, 6, 8, 8)
    assert torch.allclose(batch[1, 2], torch.nn.functional.avg_pool2d(a, 8), atol=1e-6)
    with pytest.raises(ValueError, match=r"intrinsics \(..., 3, 3\) and camera-to-world poses"):
        plucker_rays(K, torch.eye(3), 2, 2)


def test_camera_scene_moves_its_camera():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import wm_hub.envs  # noqa: F401 - registers the envs

    check_env(CameraSceneEnv(), skip_render_check=True)
    assert isinstance(gym.make("wm_hub/CameraScene-v0").unwrapped, CameraSceneEnv)
    env = CameraSceneEnv()
    obs, info = env.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs.std() > 5
    pose = info["camera_pose"].astype(np.float64)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
    obs2, _, _, _, info = env.step(np.array([0, 0, 1, 0], np.float32))  # forward
    assert np.allclose(info["camera_pose"][:3, 3], pose[:3, 3] + MOVE * pose[:3, 2], atol=1e-5)
    assert not np.array_equal(obs, obs2)
    _, _, _, _, turned = env.step(np.array([0, 0, 0, 1], np.float32))  # yaw > 0 turns right
    assert turned["camera_pose"][:3, 2] @ pose[:3, 0] > 0.05
    with pytest.raises(ValueError, match=r"camera move \(right, up, forward, yaw\)"):
        env.step(np.zeros(3))
    # look_at: the target projects to the image centre
    K, cam = intrinsics(64), look_at(np.array([5.0, 1.0, 2.0]), np.array([0.0, 0.0, 0.5]))
    p = K @ (cam[:3, :3].T @ (np.array([0.0, 0.0, 0.5]) - cam[:3, 3]))
    assert np.allclose(p[:2] / p[2], [32, 32])
    with pytest.raises(ValueError, match="straight up or down"):
        look_at(np.array([0.0, 0, 3]), np.zeros(3))


def test_camera_clips_record_the_cameras_in_parts():
    one = record_camera_clips(3, seed=5, frames=5)
    assert {"intrinsics", "camera_pose", "seed", "action"} <= set(one.column_names) and len(one) == 15
    assert np.asarray(one["action"]).shape == (15, 4)
    assert np.allclose(np.asarray(one["intrinsics"][0]).reshape(3, 3), intrinsics(64))
    assert [int(s[0]) for s in one["seed"][::5]] == [5, 6, 7]
    parts = record_camera_clips(3, seed=5, frames=5, workers=2)
    for column in one.column_names:
        assert np.array_equal(np.asarray(one[column]), np.asarray(parts[column])), column


def test_pusher_agent():
    paddle, pusher = PhysicsEnv(), PhysicsEnv(agent="pusher")
    _, a = paddle.reset(seed=7)
    _, b = pusher.reset(seed=7)
    assert [o["name"] for o in paddle.objects] == [o["name"] for o in pusher.objects]  # the same scene, another agent
    speeds = np.hypot(*b["object_states"].reshape(-1, 5)[:, 3:5].T)
    assert speeds.max() < 5 and not np.array_equal(a["object_states"], b["object_states"])  # come to rest first
    assert pusher.action_space.shape == (2,) and "paddle_x" not in b
    start = b["agent_position"].copy()
    for _ in range(2):
        _, _, _, _, b = pusher.step(np.array([0.0, -1.0], np.float32))  # up
    moved = start - b["agent_position"]  # 2 frames at full speed, up
    assert abs(moved[1] - 2 * PUSHER_SPEED / FPS) < 1e-3 and abs(moved[0]) < 1e-3
    with pytest.raises(ValueError, match=r"pusher's velocity, 2 number"):
        pusher.step(np.zeros(1))
    with pytest.raises(ValueError, match="agent must be one of"):
        PhysicsEnv(agent="hand")
    clips = record_physics_clips(2, seed=0, frames=5, agent="pusher")
    assert np.asarray(clips["action"]).shape == (10, 2) and {"agent_position", "seed"} <= set(clips.column_names)
    assert any("the pusher pushes" in c for c in record_physics_clips(6, frames=17, agent="pusher")["caption"])
    # one scene under several action sequences: the same first frame, other actions
    repeated = record_physics_clips(4, seed=7, frames=5, agent="pusher", actions_per_scene=2)
    frames, actions = np.asarray(repeated["observation"]), np.asarray(repeated["action"])
    assert np.asarray(repeated["seed"]).reshape(4, 5)[:, 0].tolist() == [7, 7, 8, 8]
    assert np.array_equal(frames[0], frames[5]) and not np.array_equal(frames[0], frames[10])
    assert not np.allclose(actions[0], actions[5])
    with pytest.raises(ValueError, match="actions_per_scene > 1 needs agent='pusher'"):
        record_physics_clips(2, frames=5, actions_per_scene=2)


def test_latent_frame_grouping():
    assert latent_frame_index(9, 4).tolist() == [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError, match=r"1 \+ k \* 4 frames"):
        latent_frame_index(8, 4)
    actions = torch.arange(16.0).view(1, 8, 2)  # actions[:, k] leads from frame k to k + 1
    grouped = action_condition(actions, 4)
    assert grouped.shape == (1, 3, 8)
    assert grouped[0, 0].eq(0).all()  # no action leads into frame 0
    assert grouped[0, 1].tolist() == list(range(8)) and grouped[0, 2].tolist() == list(range(8, 16))
    K = torch.as_tensor(intrinsics(64), dtype=torch.float32).expand(1, 9, 3, 3)
    poses = torch.stack([torch.as_tensor(look_at(np.array([6.0 - 0.3 * t, 1, 2]), np.zeros(3)),
                                         dtype=torch.float32) for t in range(9)])[None]
    camera = camera_condition(K, poses, 4, 64, 8)
    assert camera.shape == (1, 3, 24, 8, 8)
    relative = torch.linalg.inv(poses[0, 0]) @ poses[0, 6]  # frame 6 in the first camera's frame
    assert torch.allclose(camera[0, 2, 6:12], plucker_embedding(K[0, 6], relative, 64, 8), atol=1e-5)
    assert torch.allclose(camera[0, 0, :6], camera[0, 0, 18:])  # latent frame 0: frame 0 repeated
    assert torch.allclose(camera[0, 0, :6], plucker_embedding(K[0, 0], torch.eye(4), 64, 8), atol=1e-5)
    # The same camera path in another world frame (turned and moved) gives the same input
    turn = torch.as_tensor(look_at(np.array([1.0, -2, 0.5]), np.array([3.0, 1, 0])), dtype=torch.float32)
    assert torch.allclose(camera_condition(K, turn @ poses, 4, 64, 8), camera, atol=1e-4)


@pytest.fixture(scope="module")
def parts():
    return tiny_world_parts()


def perturb(model: torch.nn.Module, match: str) -> None:
    for name, p in model.named_parameters():
        if match in name:
            p.data.normal_(std=0.1)


def test_extended_model_starts_as_the_base(parts):
    base = parts["transformer"]
    x, t, text = torch.randn(2, 3, 4, 8, 8), torch.rand(2), torch.randn(2, 5, 16)
    camera, actions = torch.randn(2, 3, 24, 8, 8), torch.randn(2, 3, 8)
    both = extend_for_control(base, camera=True, action_dim=2)
    assert both.config.camera_conditioning and both.config.action_dim == 2 and both.config.frames_per_latent == 4
    expected = base(x, t, text).sample
    assert torch.equal(both(x, t, text, camera=camera, actions=actions).sample, expected)
    perturb(both, "camera_embed")
    perturb(both, "action_embed")
    assert not torch.allclose(both(x, t, text, camera=camera).sample, expected)
    assert not torch.allclose(both(x, t, text, actions=actions).sample, expected)
    with pytest.raises(ValueError, match="takes no camera"):
        base(x, t, text, camera=camera)
    with pytest.raises(ValueError, match="takes no actions"):
        base(x, t, text, actions=actions)
    with pytest.raises(ValueError, match=r"expected camera \(B, T, 6 \* frames_per_latent, H, W\)"):
        both(x, t, text, camera=camera[:, :, :6])
    with pytest.raises(ValueError, match=r"expected actions \(B, T, frames_per_latent \* action_dim\)"):
        both(x, t, text, actions=actions[..., :2])
    with pytest.raises(ValueError, match="nothing to add"):
        extend_for_control(base)


def test_action_features_add_the_displacement_since_the_first_frame():
    from wm_hub.layers.control import action_features

    actions = action_condition(torch.arange(16.0).view(1, 8, 2), 4)  # (1, 3, 8): 9 frames, 2-D actions
    features = action_features(actions, 4)
    assert features.shape == (1, 3, 4, 4)
    assert torch.equal(features[..., :2].flatten(1), actions.flatten(1))  # each frame's action ...
    displacement = torch.cat([torch.zeros(4, 2), torch.arange(16.0).view(8, 2)]).cumsum(0) / 4
    assert torch.equal(features[0, ..., 2:].reshape(12, 2), displacement)  # ... beside the running sum
    assert features[0, 2, 3, 2:].tolist() == [56 / 4, 64 / 4]


def test_lora_trains_adapters_and_control_and_merges_back(parts):
    model = extend_for_control(parts["transformer"], action_dim=2)
    lora = add_lora(model, rank=2)
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "action_embed" in n for n in trainable)
    assert any("action_embed" in n for n in trainable)
    perturb(lora, "lora_B")
    perturb(lora, "modules_to_save")
    x, t, text, actions = torch.randn(1, 3, 4, 8, 8), torch.rand(1), torch.randn(1, 5, 16), torch.randn(1, 3, 8)
    out = lora(x, t, text, actions=actions).sample
    merged = merge_lora(lora)
    assert type(merged) is WorldTransformer3DModel
    assert not any("lora" in k or "modules_to_save" in k for k in merged.state_dict())
    assert torch.allclose(merged(x, t, text, actions=actions).sample, out, atol=1e-5)
    with pytest.raises(ValueError, match="LoRA rank >= 1"):
        add_lora(model, rank=0)


def test_pipeline_takes_the_camera_or_the_actions(parts):
    image = np.zeros((64, 64, 3), np.uint8)
    K, run = intrinsics(64), {"num_frames": 9, "num_inference_steps": 2}
    poses = np.stack([look_at(np.array([6.0 - 0.3 * t, 0, 2]), np.zeros(3)) for t in range(9)])
    camera_model = extend_for_control(parts["transformer"], camera=True)
    perturb(camera_model, "camera_embed")
    pipe = Video2WorldPipeline(**{**parts, "transformer": camera_model})
    a = pipe("", image=image, camera=(K, poses), generator=torch.Generator().manual_seed(0), **run).frames
    b = pipe("", image=image, camera=(K, poses[::-1].copy()), generator=torch.Generator().manual_seed(0), **run).frames
    assert a.shape == (1, 9, 64, 64, 3) and not np.array_equal(a, b)
    two = pipe(["", ""], image=image, camera=(K, np.stack([poses, poses])), **run).frames
    assert two.shape[0] == 2
    with pytest.raises(ValueError, match=r"camera poses \(T, 4, 4\) or \(B, T, 4, 4\) with T = num_frames = 9"):
        pipe("", image=image, camera=(K, poses[:5]), **run)
    with pytest.raises(ValueError, match=r"intrinsics \(3, 3\), \(T, 3, 3\)"):
        pipe("", image=image, camera=(np.eye(2), poses), **run)
    with pytest.raises(ValueError, match="takes no actions: load one fine-tuned for action control"):
        pipe("", image=image, actions=np.zeros((8, 2)), **run)
    with pytest.raises(ValueError, match="takes no camera: load one fine-tuned for camera control"):
        Video2WorldPipeline(**parts)("", image=image, camera=(K, poses), **run)
    action_pipe = Video2WorldPipeline(**{**parts, "transformer": extend_for_control(parts["transformer"],
                                                                                    action_dim=2)})
    assert action_pipe("", image=image, actions=np.ones((8, 2)), **run).frames.shape == (1, 9, 64, 64, 3)
    with pytest.raises(ValueError, match=r"expected actions \(T - 1, 2\) or \(B, T - 1, 2\)"):
        action_pipe("", image=image, actions=np.ones((8, 3)), **run)


def test_control_inputs_from_clips(parts):
    from torch.utils.data import default_collate

    from wm_hub.data import ClipDataset

    clips = ClipDataset(record_camera_clips(2, frames=5), clip_len=5)
    batch = default_collate([clips[0], clips[1]])
    model = extend_for_control(parts["transformer"], camera=True)
    control = control_inputs(batch, model, 64, 8)
    assert list(control) == ["camera"] and control["camera"].shape == (2, 2, 24, 8, 8)
    pushes = ClipDataset(record_physics_clips(2, frames=5, agent="pusher"), clip_len=5)
    batch = default_collate([pushes[0], pushes[1]])
    control = control_inputs(batch, extend_for_control(parts["transformer"], action_dim=2), 64, 8)
    assert control["actions"].shape == (2, 2, 8)
    assert torch.equal(control["actions"][:, 1].view(2, 4, 2), batch["actions"][:, :4, 0])
    with pytest.raises(ValueError, match="takes 3-D actions, the data has 2-D ones"):
        control_inputs(batch, extend_for_control(parts["transformer"], action_dim=3), 64, 8)


def test_resimulation_reproduces_the_clips():
    from torch.utils.data import default_collate

    from wm_hub.data import ClipDataset
    from wm_hub.models.cosmos.evaluation_control import resimulate

    for kind, data in (("camera", record_camera_clips(2, seed=9, frames=5)),
                       ("action", record_physics_clips(2, seed=9, frames=5, agent="pusher"))):
        batch = default_collate(list(ClipDataset(data, clip_len=5)))
        seeds = [int(s) for s in batch["seed"][:, 0, 0]]
        frames, poses = resimulate(kind, seeds, batch["actions"][:, :-1, 0])
        assert torch.equal(frames, batch["frames"]), kind
        if kind == "camera":
            assert torch.allclose(poses, batch["camera_pose"].view(2, 5, 4, 4), atol=1e-6)


@pytest.mark.parametrize("family", ["diffusion", "autoregressive"])
@pytest.mark.parametrize("kind", ["camera", "action"])
def test_control_evaluation_card_and_demo(parts, tmp_path, capsys, monkeypatch, kind, family):
    from huggingface_hub import ModelCard

    from wm_hub.cli import main
    from wm_hub.data import save_dataset
    from wm_hub.models.cosmos.evaluation_control import BASES, TOKENIZERS

    cards = tmp_path / "model_cards"
    if family == "diffusion":
        pipeline, base_parts = Video2WorldPipeline, parts
    else:  # a context of 5 latent frames: the 17 frames evaluated
        pipeline, base_parts = ARVideo2WorldPipeline, tiny_ar_parts(max_latent_frames=5)
    base_name = BASES[family]
    pipeline(**base_parts).save_pretrained(cards / base_name)  # the base model
    name = f"{kind}-tiny"
    if kind == "camera":
        tuned, clips = extend_for_control(base_parts["transformer"], camera=True), record_camera_clips
    else:
        tuned = extend_for_control(base_parts["transformer"], action_dim=2)
        clips = functools.partial(record_physics_clips, agent="pusher")
    perturb(tuned, f"{kind}_embed")
    pipeline(**{**base_parts, "transformer": tuned}).save_pretrained(cards / name)
    for folder in (base_name, name):  # shipped: a folder with a card
        (cards / folder / "README.md").write_text("---\nlibrary_name: wm_hub\n---\nA tiny test model.\n")
    save_dataset(clips(3, seed=1_000_000, frames=17), tmp_path / "eval")
    notes = tmp_path / "notes.md"
    notes.write_text("Random weights.")
    monkeypatch.setenv("WM_HUB_MODEL_CARDS", str(cards))
    capsys.readouterr()
    what = {"camera": "camera", "action": "actions"}[kind]
    assert main(["eval", name, "--data", str(tmp_path / "eval"), "--count", "3", "--write-card",
                 "--training-notes", str(notes)]) == 0
    out = capsys.readouterr().out
    for row in (f"Video2World with the clip's {what} PSNR, 8 frames", f"base model ({base_name}), same "
                "first frame SSIM, 16 frames", "PSNR gain over the base model, 8 frames",
                f"another clip's {what}: PSNR against the simulation of them, 8 frames",
                f"another clip's {what}: PSNR against the clip's own frames, 16 frames",
                "reconstruction PSNR of its tokenizer (the ceiling)", "copy the first frame PSNR, 8 frames"):
        assert row in out
    card = ModelCard.load(cards / name / "README.md")
    assert card.data.pipeline_tag == "image-to-video" and len(card.data.eval_results) == 17
    assert f"wm-hub eval {name} --data" in card.text and f"`{base_name}` (a Cosmos-style" in card.text
    assert f"Its tokenizer is `{TOKENIZERS[family]}` fine-tuned on" in card.text
    assert f"the swapped-{kind} rows measure the {kind} control alone" in card.text
    namespace: dict = {}
    exec(card.text.split("```python\n", 1)[1].split("```", 1)[0], namespace)  # the card's usage runs as written
    assert namespace["video"].shape == (1, 17, 64, 64, 3)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert f"{name}: held-out scene 4000000 from its first frame and {what}" in capsys.readouterr().out
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "demo" / f"{name}.gif", index=None).shape == (17, 256, 768, 3)
