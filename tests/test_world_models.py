"""World Models (Ha & Schmidhuber 2018): the MDN, V, M, C, the agent (acting, dreaming, saving) and CMA-ES."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from wm_hub import (
    MDNRNN,
    Controller,
    ControllerConfig,
    ConvVAE,
    ConvVAEConfig,
    MDNRNNConfig,
    WorldModelsAgent,
)
from wm_hub.hub import load
from wm_hub.layers.distributions import mdn_log_prob, mdn_sample
from wm_hub.models.world_models.evolution_world_models import CMAES, EnvFitness, dream_returns
from wm_hub.models.world_models.modeling_world_models import preprocess_frames

D, H = 8, 16


def tiny_parts(seed: int = 0) -> tuple[ConvVAE, MDNRNN, Controller]:
    torch.manual_seed(seed)
    vae = ConvVAE(ConvVAEConfig(latent_dim=D, channels=(4, 8, 8, 16), frame_crop=(0, 84, 0, 96)))
    mdnrnn = MDNRNN(MDNRNNConfig(latent_dim=D, hidden_size=H, gaussians=3))
    controller = Controller(ControllerConfig(latent_dim=D, hidden_size=H, env_id="CarRacing-v3"))
    return vae, mdnrnn, controller


def test_mdn_log_prob_and_temperature():
    x = torch.randn(5, 3)
    mu, log_sigma = torch.randn(5, 3, 1), torch.randn(5, 3, 1) * 0.3
    expected = torch.distributions.Normal(mu[..., 0], log_sigma[..., 0].exp()).log_prob(x)
    torch.testing.assert_close(mdn_log_prob(torch.zeros(5, 3, 1), mu, log_sigma, x), expected)
    # two equal components are one Gaussian
    two = mdn_log_prob(torch.zeros(5, 3, 2), mu.expand(5, 3, 2), log_sigma.expand(5, 3, 2), x)
    torch.testing.assert_close(two, expected)
    # a low temperature picks the likeliest component and shrinks the noise
    logits = torch.tensor([[[2.0, 0.0]]]).expand(4000, 1, 2)
    means = torch.tensor([[[1.0, -5.0]]]).expand(4000, 1, 2)
    cold = mdn_sample(logits, means, torch.zeros(4000, 1, 2), 0.05, torch.Generator().manual_seed(0))
    assert (cold - 1).abs().max() < 1.5 and cold.shape == (4000, 1)
    warm = mdn_sample(logits, means, torch.zeros(4000, 1, 2), 1.0, torch.Generator().manual_seed(0))
    assert 0.05 < (warm < -2).float().mean() < 0.2  # about softmax([2, 0])[1] = 0.12 from the second component
    again = mdn_sample(logits, means, torch.zeros(4000, 1, 2), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(warm, again)
    with pytest.raises(ValueError, match="temperature > 0"):
        mdn_sample(logits, means, torch.zeros(4000, 1, 2), 0.0)


def test_vae_preprocess_shapes_and_learning():
    vae, _, _ = tiny_parts()
    raw = np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    assert preprocess_frames(raw, vae.config).shape == (3, 64, 64, 3)
    small = raw[:, :64, :64]
    assert preprocess_frames(small, vae.config) is small  # already V's size: taken as preprocessed
    assert preprocess_frames(raw[:, :50, :70], vae.config).shape == (3, 64, 64, 3)  # other sizes are resized
    with pytest.raises(ValueError, match=r"expected uint8 frames"):
        preprocess_frames(raw.astype(np.float32), vae.config)
    with pytest.raises(ValueError, match=r"expected frames \(B, 3, 64, 64\)"):
        vae.encode(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="frame_crop"):
        ConvVAEConfig(frame_crop=(10, 5, 0, 96))
    yy, xx = np.mgrid[0:96, 0:96]
    shapes = np.stack([np.stack([xx * 2, yy * 2, (xx // 16 + yy // 16) % 2 * 200], -1),  # gradients, checkers
                       np.stack([yy * 2, 255 - xx * 2, (xx > 48) * 255], -1),
                       np.stack([(xx - 48) ** 2 + (yy - 40) ** 2 < 400] * 3, -1) * 230]).astype(np.uint8)
    x = vae.preprocess(shapes)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (3, D) and vae.decode(mu).shape == (3, 3, 64, 64)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        out = vae(x, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.logs["reconstruction"].item())
    assert losses[-1] < 0.7 * losses[0]


def test_mdnrnn_loss_mask_causality_and_step():
    _, m, _ = tiny_parts()
    g = torch.Generator().manual_seed(0)
    z, a = torch.randn(2, 7, D, generator=g), torch.rand(2, 6, 3, generator=g)
    r, d = torch.randn(2, 6, generator=g), torch.zeros(2, 6)
    out = m(z, a, r, d)
    assert set(out.logs) == {"z_nll", "reward_mse", "done_bce"} and out.mu.shape == (2, 6, D, 3)
    # padded steps (mask 0) do not count
    mask = torch.ones(2, 6)
    mask[:, 4:] = 0
    z2, r2 = z.clone(), r.clone()
    z2[:, 5:] += 10
    r2[:, 4:] = 99
    torch.testing.assert_close(m(z, a, r, d, mask).loss, m(z2, a, r2, d, mask).loss)
    # changing step k changes no prediction before k
    z3 = z.clone()
    z3[:, 3] += 1
    torch.testing.assert_close(m(z3, a).mu[:, :3], out.mu[:, :3])
    assert not torch.allclose(m(z3, a).mu[:, 3], out.mu[:, 3])
    # step by step = the sequence
    state = m.initial_state(2)
    for t in range(6):
        h, state = m.step(z[:, t], a[:, t], state)
    torch.testing.assert_close(m.heads(h)[1], out.mu[:, -1])
    with pytest.raises(ValueError, match=r"expected latents \(B, T\+1, 8\) and actions \(B, T, 3\)"):
        m(z, a[:, :4])


def test_controller_squash_flat_and_batched():
    _, _, c = tiny_parts()
    n = c.config.num_parameters_flat
    assert n == (D + H + 1) * 3 and np.all(c.flat_parameters() == 0)
    flat = np.random.default_rng(0).normal(0, 3, n)
    c.load_flat_parameters(flat)
    np.testing.assert_allclose(c.flat_parameters(), flat, rtol=1e-6)
    z, h = torch.randn(50, D), torch.randn(50, H)
    a = c(z, h)
    assert a.shape == (50, 3)
    assert a[:, 0].abs().max() <= 1 and a[:, 1].min() >= 0 and a[:, 1].max() <= 1
    assert (a[:, 2] == 0).any() and a[:, 2].min() >= 0  # brake: clip(tanh, 0, 1), off for negative pre-activations
    pre = torch.tanh(c.linear(torch.cat([z, h], -1)))
    torch.testing.assert_close(a[:, 1], (pre[:, 1] + 1) / 2)
    flats = torch.tensor(np.stack([flat, -flat]), dtype=torch.float32)
    batched = c.act_batched(flats, z[None].expand(2, 50, D), h[None].expand(2, 50, H))
    torch.testing.assert_close(batched[0], a)
    c.load_flat_parameters(-flat)
    torch.testing.assert_close(batched[1], c(z, h))
    with pytest.raises(ValueError, match=rf"expected a flat parameter vector \({n},\)"):
        c.load_flat_parameters(flat[:-1])
    with pytest.raises(ValueError, match="action_low < action_high"):
        ControllerConfig(action_low=(1.0, 0.0, 0.0))


def test_agent_refuses_parts_that_do_not_fit():
    vae, mdnrnn, _ = tiny_parts()
    wrong = Controller(ControllerConfig(latent_dim=D, hidden_size=2 * H))
    with pytest.raises(ValueError, match=r"controller maps \[z \(8\), h \(32\)\] to 3 actions, but V gives z of 8 "
                                         r"and M has h of 16"):
        WorldModelsAgent(vae, mdnrnn, wrong)
    with pytest.raises(ValueError, match="V encodes z of size 8 but M models z of size 4"):
        WorldModelsAgent(vae, MDNRNN(MDNRNNConfig(latent_dim=4, hidden_size=H)))
    agent = WorldModelsAgent(vae, mdnrnn)
    with pytest.raises(ValueError, match="this agent has no controller"):
        agent.get_controller("controller")


def test_agent_dreams_saves_and_plays(tmp_path):
    vae, mdnrnn, controller = tiny_parts()
    controller.load_flat_parameters(np.random.default_rng(1).normal(0, 0.5, controller.config.num_parameters_flat))
    agent = WorldModelsAgent(vae, mdnrnn, controller)
    frame = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    out = agent(frame, num_steps=5, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 6, 64, 64, 3) and out.frames.dtype == np.uint8
    assert out.actions.shape == (1, 5, 3) and out.rewards.shape == (1, 5) and out.done_probs.shape == (1, 5)
    agent.save_pretrained(tmp_path / "agent")
    loaded = load(tmp_path / "agent")
    assert isinstance(loaded, WorldModelsAgent) and loaded.dream_controller is None
    again = loaded(frame, num_steps=5, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(again.frames, out.frames)
    with pytest.raises(ValueError, match="num_steps >= 1"):
        agent(frame, num_steps=0)

    env = gym.make("CarRacing-v3", max_episode_steps=40)
    played = agent.play(env, 1, seed=3, generator=torch.Generator().manual_seed(0), record=True)[0]
    assert played["length"] == 40 and played["frames"].shape == (40, 96, 96, 3) and played["actions"].shape == (40, 3)
    # early stop: no positive reward for `patience` steps ends it, charging the steps left
    stopped = agent.play(env, 1, seed=3, generator=torch.Generator().manual_seed(0), patience=1, step_penalty=0.1)[0]
    assert stopped["length"] < 40
    with pytest.raises(ValueError, match="patience needs an env with a time limit"):
        agent.play(gym.make("CarRacing-v3", max_episode_steps=None).unwrapped, 1, patience=5)


def test_cmaes_optimises_and_resumes():
    target = np.linspace(-1, 1, 6)
    es = CMAES(np.zeros(6), 0.5, 8, seed=0)
    for _ in range(60):
        x = es.ask()
        es.tell(x, -((x - target) ** 2).sum(1))
    assert np.abs(es.mean - target).max() < 0.05 and es.generation == 60 and es.best_fitness > -0.01
    arrays, numbers = es.state()
    resumed = CMAES.from_state(arrays, numbers)
    assert resumed.generation == 60 and np.array_equal(resumed.mean, es.mean)
    assert resumed.ask().shape == (8, 6)
    with pytest.raises(ValueError, match="population of at least 2"):
        CMAES(np.zeros(6), 0.5, 1, seed=0)


def test_dream_returns_batched_and_done_head():
    _, mdnrnn, controller = tiny_parts()
    candidates = np.random.default_rng(0).normal(0, 0.1, (3, controller.config.num_parameters_flat))
    starts = torch.randn(4, D)
    a = dream_returns(mdnrnn, controller, candidates, starts, 10, 1.0, torch.Generator().manual_seed(0))
    b = dream_returns(mdnrnn, controller, candidates, starts, 10, 1.0, torch.Generator().manual_seed(0))
    assert a.shape == (3,) and np.array_equal(a, b)
    with torch.no_grad():  # a done head that always fires: every rollout ends after its first reward
        mdnrnn.done_head.bias.fill_(50.0)
        mdnrnn.reward_head.weight.zero_()
        mdnrnn.reward_head.bias.fill_(2.0)
    np.testing.assert_allclose(dream_returns(mdnrnn, controller, candidates, starts, 10, 1.0), 2.0)
    no_reward = MDNRNN(MDNRNNConfig(latent_dim=D, hidden_size=H, predict_reward=False))
    with pytest.raises(ValueError, match="needs an MDN-RNN with a reward head"):
        dream_returns(no_reward, controller, candidates, starts, 10, 1.0)


def test_env_fitness_ranks_candidates_on_the_same_tracks(tmp_path):
    vae, mdnrnn, controller = tiny_parts()
    vae.save_pretrained(tmp_path / "vae")
    mdnrnn.save_pretrained(tmp_path / "mdnrnn")
    fitness = EnvFitness(tmp_path / "vae", tmp_path / "mdnrnn", controller.config, "CarRacing-v3", rollouts=2,
                         env_kwargs={"max_episode_steps": 30})
    candidates = np.zeros((2, controller.config.num_parameters_flat))
    scores = fitness(candidates, seed=5)
    assert scores.shape == (2,) and scores[0] == scores[1]  # the same parameters on the same tracks
    fitness.close()
