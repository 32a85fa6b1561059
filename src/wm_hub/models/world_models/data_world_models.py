"""Data of World Models' training steps: rollouts of a random driving policy recorded as Hugging Face datasets (one
folder per shard of episodes, so collection resumes shard by shard and spreads over processes), the frames V
trains on, and the (z, a, r, done) sequences M trains on."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.utils.data import Dataset

from wm_hub.data.recorder import load_dataset_dir, record_episodes, save_dataset
from wm_hub.models.world_models.configuration_world_models import ConvVAEConfig
from wm_hub.models.world_models.modeling_world_models import ConvVAE, preprocess_frames


class RandomDrivingPolicy:
    """The random policy of the first rollouts, for envs with CarRacing's actions (steer in [-1, 1], gas and brake
    in [0, 1]): an action is drawn and held for 5 to 30 steps (steer uniform, or straight half of the time; gas
    uniform; brake on one hold in five), so the car drives, turns, skids and leaves the track instead of jittering
    in place as with a fresh uniform action every step."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.left, self.action = 0, np.zeros(3, dtype=np.float32)

    def __call__(self, obs: Any, info: dict) -> np.ndarray:
        if self.left == 0:
            r = self.rng
            steer = r.uniform(-1, 1) if r.random() < 0.5 else 0.0
            brake = r.uniform(0, 0.8) if r.random() < 0.2 else 0.0
            self.action = np.array([steer, r.uniform(0, 1), brake], dtype=np.float32)
            self.left = int(r.integers(5, 31))
        self.left -= 1
        return self.action.copy()


class AgentPolicy:
    """The paper's iterative procedure: a trained agent drives to record new rollouts, its actions perturbed by
    Gaussian noise of std `noise` and clipped to the controller's bounds; M consumes the action actually taken.
    `parts` names the folders of V, M and C."""

    def __init__(self, parts: dict[str, str], noise: float = 0.1, seed: int = 0) -> None:
        from wm_hub.models.world_models.modeling_world_models import MDNRNN, Controller
        from wm_hub.models.world_models.pipeline_world_models import WorldModelsAgent

        self.agent = WorldModelsAgent(ConvVAE.from_pretrained(parts["vae"]), MDNRNN.from_pretrained(parts["mdnrnn"]),
                                      Controller.from_pretrained(parts["controller"]))
        self.noise, self.generator = noise, torch.Generator().manual_seed(seed)
        self.reset()

    def reset(self) -> None:
        self.state = self.agent.reset(1)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        action, self.state = self.agent.act(obs[None], self.state, generator=self.generator, noise=self.noise)
        return action[0].numpy()


class PreprocessedFrames(gym.ObservationWrapper):
    """Observations as V takes them: uint8 `(64, 64, 3)` (`preprocess_frames`: V's crop, then resize)."""

    def __init__(self, env: gym.Env, config: ConvVAEConfig) -> None:
        super().__init__(env)
        self.config = config
        self.observation_space = gym.spaces.Box(0, 255, (config.image_size, config.image_size, 3), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return preprocess_frames(observation, self.config)


def _record_shard(job: tuple[str, dict[str, Any], dict[str, Any], dict[str, Any] | None, int, int, int | None, str]
                  ) -> str:
    env_id, env_kwargs, vae_config, agent, episodes, seed, max_steps, out = job
    torch.set_num_threads(1)
    env = PreprocessedFrames(gym.make(env_id, **env_kwargs), ConvVAEConfig(**vae_config))
    policy = RandomDrivingPolicy(seed) if agent is None else AgentPolicy(agent["parts"], agent["noise"], seed)
    ds = record_episodes(env, episodes, policy=policy, max_steps=max_steps, seed=seed, progress=False)
    save_dataset(ds, out)
    return out


def record_rollouts(env_id: str, out_dir: str | os.PathLike, episodes: int, vae_config: ConvVAEConfig,
                    shard_episodes: int = 10, seed: int = 0, max_steps: int | None = None, workers: int = 1,
                    env_kwargs: dict[str, Any] | None = None, agent: dict[str, Any] | None = None) -> list[Path]:
    """Record `episodes` episodes of `gym.make(env_id, **env_kwargs)` into `out_dir/shard-XXXXX` (each a dataset of
    `shard_episodes` episodes, reset seeds `seed + shard index * shard_episodes` on), skipping shards already there;
    `workers` processes record shards in parallel. The random driving policy drives, or with `agent` (`{"parts":
    {"vae": folder, "mdnrnn": folder, "controller": folder}, "noise": std}`) a trained agent (`AgentPolicy`).
    Returns the shard folders."""
    if episodes < 1 or shard_episodes < 1:
        raise ValueError(f"expected episodes >= 1 and shard_episodes >= 1, got {episodes} and {shard_episodes}")
    out = Path(out_dir)
    jobs, shards = [], []
    for index, start in enumerate(range(0, episodes, shard_episodes)):
        path = out / f"shard-{index:05d}"
        shards.append(path)
        if not path.is_dir():
            jobs.append((env_id, env_kwargs or {}, vae_config.to_dict(), agent, min(shard_episodes, episodes - start),
                         seed + start, max_steps, str(path)))
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for done in pool.imap_unordered(_record_shard, jobs):
                print(f"recorded {done}", flush=True)
    else:
        for job in jobs:
            print(f"recorded {_record_shard(job)}", flush=True)
    return shards


def load_rollouts(*folders: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """The episodes of every `shard-*` dataset under each folder (or of the dataset folder itself): per episode
    `frames` uint8 `(T+1, 64, 64, 3)`, `actions` float32 `(T, A)`, `rewards` `(T,)`, `terminated` bool `(T,)`."""
    shards = [s for folder in map(Path, folders) for s in (sorted(folder.glob("shard-*")) or [folder])]
    episodes = []
    for shard in shards:
        ds = load_dataset_dir(shard).with_format("numpy")
        index = np.asarray(ds["episode_index"])
        # datasets' numpy format widens Array3D uint8 to int64 (one shard at a time, so the copy stays small)
        frames = np.asarray(ds["observation"], dtype=np.uint8)
        actions, rewards, terminated = (np.asarray(ds[k]) for k in ("action", "reward", "terminated"))
        for e in np.unique(index):
            rows = np.flatnonzero(index == e)
            episodes.append({"frames": frames[rows], "actions": actions[rows[:-1]].astype(np.float32),
                             "rewards": rewards[rows[:-1]].astype(np.float32), "terminated": terminated[rows[:-1]]})
    if not episodes:
        raise ValueError(f"no episodes under {', '.join(map(str, folders))}; record some with "
                         "`train_world_models.py --stage collect`")
    return episodes


class FrameDataset(Dataset):
    """Every frame of the episodes, for V: items `{"frames": (3, 64, 64) float in [-1, 1]}`."""

    def __init__(self, episodes: list[dict[str, np.ndarray]]) -> None:
        self.frames = torch.from_numpy(np.concatenate([e["frames"] for e in episodes]))  # (N, 64, 64, 3) uint8

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"frames": self.frames[i].permute(2, 0, 1).float() / 127.5 - 1.0}


@torch.no_grad()
def encode_rollouts(vae: ConvVAE, episodes: list[dict[str, np.ndarray]], batch_size: int = 256
                    ) -> list[dict[str, np.ndarray]]:
    """V's posterior of every frame: per episode `mu` and `logvar` float32 `(T+1, D)` beside the actions, rewards
    and terminations (the frames are dropped)."""
    vae.eval()
    out = []
    for e in episodes:
        mus, logvars = [], []
        for start in range(0, len(e["frames"]), batch_size):
            mu, logvar = vae.encode(vae.preprocess(e["frames"][start:start + batch_size]))
            mus.append(mu.cpu())
            logvars.append(logvar.cpu())
        out.append({"mu": torch.cat(mus).numpy(), "logvar": torch.cat(logvars).numpy(),
                    **{k: e[k] for k in ("actions", "rewards", "terminated")}})
    return out


class LatentSequenceDataset(Dataset):
    """Windows of `seq_len` steps of the encoded episodes, for M. Each item: `latents` `(seq_len+1, D)` drawn from
    V's posterior afresh each time (as in the paper), `actions` `(seq_len, A)`, `rewards`, `dones` and `mask`
    `(seq_len,)` (episodes shorter than a window are padded, the mask 0 there). Windows start every
    `stride` steps."""

    def __init__(self, encoded: list[dict[str, np.ndarray]], seq_len: int, stride: int | None = None,
                 seed: int = 0) -> None:
        if seq_len < 1:
            raise ValueError(f"expected seq_len >= 1, got {seq_len}")
        self.encoded, self.seq_len = encoded, seq_len
        stride = stride or seq_len
        self.windows = [(i, s) for i, e in enumerate(encoded)
                        for s in range(0, max(1, len(e["actions"]) - seq_len + 1), stride)]
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, start = self.encoded[self.windows[i][0]], self.windows[i][1]
        n = min(self.seq_len, len(e["actions"]) - start)
        mu = torch.from_numpy(e["mu"][start:start + n + 1])
        std = torch.from_numpy(e["logvar"][start:start + n + 1]).mul(0.5).exp()
        z = mu + std * torch.randn(mu.shape, generator=self.generator)

        def pad(x: torch.Tensor, length: int) -> torch.Tensor:
            return torch.cat([x, x.new_zeros(length - len(x), *x.shape[1:])])

        T = self.seq_len
        return {"latents": pad(z, T + 1),
                "actions": pad(torch.from_numpy(e["actions"][start:start + n]), T),
                "rewards": pad(torch.from_numpy(e["rewards"][start:start + n]), T),
                "dones": pad(torch.from_numpy(e["terminated"][start:start + n].astype(np.float32)), T),
                "mask": pad(torch.ones(n), T)}
