"""DreamerV3: distributions, RSSM, world-model and actor-critic losses, replay buffer, environment glue."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wm_hub.layers.distributions import (
    SymexpTwoHot,
    categorical_kl,
    sample_one_hot,
    symexp,
    symlog,
    twohot_bins,
    twohot_encode,
    unimix_logits,
)
from wm_hub.models.dreamer.configuration_dreamer import PRESETS, DreamerConfig
from wm_hub.models.dreamer.environment_dreamer import (
    action_to_env,
    check_env,
    make_env,
    run_episodes,
    space_config,
)
from wm_hub.models.dreamer.modeling_dreamer import DreamerAgent, lambda_returns
from wm_hub.models.dreamer.replay_dreamer import ReplayBuffer


def tiny_config(**kwargs) -> DreamerConfig:
    values = {"obs_shape": (4,), "action_dim": 2, "deter": 32, "hidden": 16, "stoch": 4, "classes": 4, "blocks": 4,
              "units": 16, "bins": 21, "imag_horizon": 4, "env_id": "CartPole-v1"}
    return DreamerConfig(**{**values, **kwargs})


def batch(config: DreamerConfig, b: int = 3, t: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    actions = F.one_hot(torch.randint(0, config.action_dim, (b, t), generator=g), config.action_dim).float()
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {"obs": torch.randn(b, t, *config.obs_shape, generator=g), "prev_actions": actions,
            "rewards": torch.rand(b, t, generator=g), "is_first": first, "is_terminal": torch.zeros(b, t)}


# Distributions -------------------------------------------------------------------------------------


def test_symlog_symexp_invert_each_other():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.5, 3.0, 1e4])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-4)
    assert symlog(torch.tensor(1e4)) < 10


def test_twohot_encoding_splits_between_neighbours():
    bins = twohot_bins(5, -2, 2)  # -2, -1, 0, 1, 2
    target = twohot_encode(torch.tensor([0.25, -5.0, 2.0]), bins)
    assert torch.allclose(target[0], torch.tensor([0, 0, 0.75, 0.25, 0]))
    assert torch.allclose(target[1], torch.tensor([1.0, 0, 0, 0, 0]))  # clipped to the end bin
    assert torch.allclose(target[2], torch.tensor([0, 0, 0, 0, 1.0]))
    assert torch.allclose((target * bins).sum(-1), torch.tensor([0.25, -2.0, 2.0]))


def test_symexp_twohot_learns_a_large_value():
    logits = torch.zeros(255, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.5)
    for _ in range(200):
        loss = -SymexpTwoHot(logits, twohot_bins()).log_prob(torch.tensor(1234.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert SymexpTwoHot(logits, twohot_bins()).mean().item() == pytest.approx(1234.0, rel=0.02)
    with pytest.raises(ValueError, match=r"expected logits \(\.\.\., 255\)"):
        SymexpTwoHot(torch.zeros(3, 7), twohot_bins())


def test_unimix_floor_and_straight_through_sample():
    logits = torch.tensor([[20.0, 0.0, 0.0, -20.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(1)) and probs.min() >= 0.01 / 4 - 1e-7
    raw = torch.randn(1000, 4, requires_grad=True)
    sample = sample_one_hot(raw, torch.Generator().manual_seed(0))
    assert torch.allclose(sample.detach(), sample.detach().round(), atol=1e-6)  # one-hot values
    assert torch.allclose(sample.detach().sum(-1), torch.ones(1000))
    (sample * torch.arange(4.0)).sum().backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0  # gradients flow through the probabilities


def test_categorical_kl():
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert torch.allclose(categorical_kl(a, a), torch.zeros(2), atol=1e-6)
    assert (categorical_kl(a, b) > 0).all() and categorical_kl(a, b).shape == (2,)


# Config --------------------------------------------------------------------------------------------


def test_presets_and_config_validation():
    config = DreamerConfig.from_preset("size12m", obs_shape=(3, 64, 64), action_dim=6)
    assert (config.deter, config.hidden, config.classes, config.units) == (2048, 256, 16, 256)
    assert config.is_image and config.feature_dim == 2048 + 32 * 16
    assert set(PRESETS) >= {"size1m", "size12m", "size25m", "size50m"}
    with pytest.raises(ValueError, match="unknown preset 'size3m'"):
        DreamerConfig.from_preset("size3m")
    with pytest.raises(ValueError, match=r"expected image observations .* got \(3, 48, 64\)"):
        DreamerConfig(obs_shape=(3, 48, 64))
    with pytest.raises(ValueError, match="multiple of blocks"):
        DreamerConfig(deter=100, blocks=8)


# World model ---------------------------------------------------------------------------------------


def test_world_model_loss_goes_down_on_a_tiny_batch():
    torch.manual_seed(0)
    agent = DreamerAgent(tiny_config())
    data = batch(agent.config)
    opt = torch.optim.Adam(agent.world_model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        out = agent.world_model(**data, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert out.posterior.features.shape == (3, 6, agent.config.feature_dim)
    assert set(out.logs) >= {"recon", "reward", "cont", "kl"}
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_is_first_resets_the_state():
    agent = DreamerAgent(tiny_config()).eval()
    data = batch(agent.config, b=1, t=6)
    first = data["is_first"].clone()
    first[0, 3] = True
    wm = agent.world_model
    embeds = wm.encoder(data["obs"])
    whole, _ = wm.rssm.observe(embeds, data["prev_actions"], first, generator=torch.Generator().manual_seed(0))
    suffix, _ = wm.rssm.observe(embeds[:, 3:], data["prev_actions"][:, 3:], first[:, 3:])
    # nothing before step 3 leaks through (later steps differ only by their random latent samples)
    assert torch.allclose(whole.deter[:, 3], suffix.deter[:, 0], atol=1e-6)
    assert torch.allclose(whole.logits[:, 3], suffix.logits[:, 0], atol=1e-6)
    assert not torch.allclose(whole.deter[:, 2], whole.deter[:, 3])


def test_bad_observations_are_refused():
    agent = DreamerAgent(tiny_config())
    data = batch(agent.config)
    data["obs"] = data["obs"][..., :3]
    with pytest.raises(ValueError, match=r"expected observations \(B, T, 4\), got shape \(3, 6, 3\)"):
        agent.world_model(**data)
    with pytest.raises(ValueError, match=r"expected observations \(B, 4\)"):
        agent.act(torch.zeros(2, 5), agent.reset(2))


def test_image_world_model_and_continuous_actions():
    config = tiny_config(obs_shape=(3, 32, 32), action_dim=3, discrete_actions=False, cnn_depth=4)
    agent = DreamerAgent(config)
    out = agent.world_model(torch.rand(2, 3, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 3) * 2 - 1, torch.zeros(2, 3),
                            torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2, 3))
    assert agent.world_model.decoder(out.posterior.features).shape == (2, 3, 3, 32, 32)
    action, state = agent.act(torch.zeros(4, 3, 32, 32), agent.reset(4), generator=torch.Generator().manual_seed(0))
    assert action.shape == (4, 3) and action.abs().max() <= 1


# Actor-critic --------------------------------------------------------------------------------------


def test_lambda_returns_by_hand():
    rewards, discounts = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.5], [0.5]])
    values = torch.tensor([[0.0], [4.0], [8.0]])
    lam = 0.5
    r1 = 2.0 + 0.5 * 8.0  # the last return bootstraps from v_H
    r0 = 1.0 + 0.5 * ((1 - lam) * 4.0 + lam * r1)
    assert torch.allclose(lambda_returns(rewards, values, discounts, lam), torch.tensor([[r0], [r1]]))


def test_actor_critic_loss_trains_only_actor_and_critic():
    agent = DreamerAgent(tiny_config())
    out = agent.world_model(**batch(agent.config))
    ac = agent.actor_critic_loss(out.posterior, torch.zeros(3, 6), torch.Generator().manual_seed(0))
    ac.loss.backward()
    assert all(p.grad is None for p in agent.world_model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.critic.parameters())
    assert all(p.grad is None for p in agent.slow_critic.parameters())
    before = [p.clone() for p in agent.slow_critic.parameters()]
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.add_(1.0)
    agent.update_slow_critic()
    for slow, old in zip(agent.slow_critic.parameters(), before, strict=True):  # slow = critic before the shift
        assert torch.allclose(slow - old, torch.full_like(old, agent.config.slow_critic_rate), atol=1e-6)


def test_save_load_acts_identically(tmp_path):
    agent = DreamerAgent(tiny_config())
    agent.return_range.copy_(torch.tensor([-1.0, 3.0]))
    agent.save_pretrained(tmp_path)
    again = DreamerAgent.from_pretrained(tmp_path)
    assert torch.equal(again.return_range, agent.return_range)
    obs = torch.randn(5, 4)
    a1, s1 = agent.act(obs, agent.reset(5), generator=torch.Generator().manual_seed(3))
    a2, s2 = again.act(obs, again.reset(5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and torch.equal(s1["rssm"].deter, s2["rssm"].deter)


# Replay buffer -------------------------------------------------------------------------------------


def test_replay_sequences_are_consecutive_across_the_ring(tmp_path):
    replay = ReplayBuffer(capacity=20, obs_shape=(1,), action_dim=2, num_envs=2)
    for step in range(25):  # wraps: 10 per env kept
        replay.add(np.array([[step], [100 + step]], np.float32), np.zeros((2, 2)), np.zeros(2), np.zeros(2, bool),
                   np.zeros(2, bool))
    assert len(replay) == 20
    sample = replay.sample(64, 4, np.random.default_rng(0))
    obs = sample["obs"][..., 0]
    assert sample["prev_action"].shape == (64, 4, 2) and sample["is_first"].dtype == torch.bool
    assert torch.equal(obs.diff(dim=1), torch.ones(64, 3))  # consecutive, never across the write position
    assert obs.remainder(100).min() >= 15  # only the 10 newest steps of each env
    replay.save(tmp_path / "replay")
    other = ReplayBuffer(capacity=20, obs_shape=(1,), action_dim=2, num_envs=2)
    other.load(tmp_path / "replay")
    again = other.sample(8, 4, np.random.default_rng(1))["obs"]
    assert torch.equal(again, replay.sample(8, 4, np.random.default_rng(1))["obs"])
    with pytest.raises(ValueError, match="expected obs"):
        ReplayBuffer(capacity=20, obs_shape=(2,), action_dim=2, num_envs=2).load(tmp_path / "replay")
    with pytest.raises(ValueError, match="fewer than a sequence of 64"):
        other.sample(1, 64, np.random.default_rng(0))


# Environments --------------------------------------------------------------------------------------


def test_space_config_and_unsupported_spaces():
    env = gym.make("CartPole-v1")
    assert space_config(env.observation_space, env.action_space) == {
        "obs_shape": (4,), "action_dim": 2, "discrete_actions": True}
    box = gym.spaces.Box(-2, 2, (3,))
    assert space_config(box, box)["discrete_actions"] is False
    with pytest.raises(ValueError, match="unsupported observation space Dict.*supported: observations: Box"):
        space_config(gym.spaces.Dict({"a": box}), box)
    with pytest.raises(ValueError, match="unsupported action space MultiDiscrete"):
        space_config(box, gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(ValueError, match="the environment has .* the agent expects"):
        check_env(tiny_config(obs_shape=(5,)), env)
    assert np.allclose(action_to_env(torch.tensor([-1.0, 0.0, 1.0]), box), [-2.0, 0.0, 2.0])
    assert action_to_env(torch.tensor([0.0, 1.0]), env.action_space) == 1


def test_pixel_observations_and_episodes():
    env = make_env("CartPole-v1", pixels=32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    config = tiny_config(obs_shape=(3, 32, 32), cnn_depth=4)
    episodes = run_episodes(DreamerAgent(config), env, 2, seed=5, record=True)
    assert len(episodes) == 2 and all(e["length"] >= 8 and e["return"] == e["length"] for e in episodes)
    assert episodes[0]["obs"].shape == (episodes[0]["length"], 3, 32, 32)
