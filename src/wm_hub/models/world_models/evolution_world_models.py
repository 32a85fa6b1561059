"""Training World Models' controller with CMA-ES (the `cma` package): fitness in the real environment, spread over
worker processes, or inside M's dream, a whole population at once; and a resumable CMA-ES state."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from wm_hub.models.world_models.configuration_world_models import ControllerConfig
from wm_hub.models.world_models.modeling_world_models import MDNRNN, Controller, ConvVAE
from wm_hub.models.world_models.pipeline_world_models import WorldModelsAgent


def _import_cma():
    with warnings.catch_warnings():  # cma warns at import when matplotlib (for its plots) is missing
        warnings.simplefilter("ignore")
        import cma
    return cma


class CMAES:
    """CMA-ES maximising a fitness over flat parameter vectors. `state()` (arrays and numbers, for safetensors and
    JSON) and `from_state` resume it: the mean, the step size and the per-coordinate scales (the diagonal of the
    covariance) come back; the off-diagonal covariance is learned again."""

    def __init__(self, x0: np.ndarray, sigma: float, popsize: int, seed: int, stds: np.ndarray | None = None,
                 generation: int = 0, best_fitness: float = -np.inf, best: np.ndarray | None = None) -> None:
        if popsize < 2:
            raise ValueError(f"expected a population of at least 2, got {popsize}")
        cma = _import_cma()
        options: dict[str, Any] = {"popsize": popsize, "seed": seed + 1, "verbose": -9}  # cma: seed 0 = random
        if stds is not None:
            options["CMA_stds"] = np.asarray(stds, dtype=np.float64)
        self.es = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=np.float64), sigma, options)
        self.popsize, self.seed, self.generation = popsize, seed, generation
        self.best_fitness = best_fitness
        self.best = np.asarray(x0, dtype=np.float64) if best is None else np.asarray(best, dtype=np.float64)

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.es.mean, dtype=np.float64)

    def ask(self) -> np.ndarray:
        """The next population `(popsize, n)`."""
        return np.stack(self.es.ask())

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> None:
        fitness = np.asarray(fitness, dtype=np.float64)
        self.es.tell(list(candidates), list(-fitness))  # cma minimises
        if fitness.max() > self.best_fitness:
            self.best_fitness, self.best = float(fitness.max()), np.array(candidates[int(fitness.argmax())])
        self.generation += 1

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (mean, per-coordinate stds, best candidate) and numbers (sigma, generation, ...)."""
        stds = np.sqrt(np.asarray(self.es.sm.variances, dtype=np.float64))
        return ({"mean": self.mean, "stds": stds, "best": self.best},
                {"sigma": float(self.es.sigma), "generation": self.generation, "popsize": self.popsize,
                 "seed": self.seed, "best_fitness": self.best_fitness})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], numbers: dict[str, Any]) -> CMAES:
        # a fresh seed per resumed generation, so a resumed run does not replay the samples it already drew
        return cls(arrays["mean"], numbers["sigma"], numbers["popsize"], numbers["seed"] + numbers["generation"],
                   stds=arrays["stds"], generation=numbers["generation"], best_fitness=numbers["best_fitness"],
                   best=arrays["best"])


# ---------------------------------------------------------------------------------------------------------------
# Fitness in the real environment


_WORKER: dict[str, Any] = {}


def load_parts(vae: str | os.PathLike, mdnrnn: str | os.PathLike, controller_config: ControllerConfig
               ) -> tuple[WorldModelsAgent, Controller]:
    """V and M from their folders, and a controller to load candidates into."""
    agent = WorldModelsAgent(ConvVAE.from_pretrained(vae), MDNRNN.from_pretrained(mdnrnn))
    controller = Controller(controller_config).eval()
    agent.get_controller(controller)  # refuses sizes that do not fit V and M
    return agent, controller


def _init_worker(vae: str, mdnrnn: str, controller_config: dict[str, Any], env_id: str,
                 env_kwargs: dict[str, Any]) -> None:
    torch.set_num_threads(1)  # one core per worker process
    agent, controller = load_parts(vae, mdnrnn, ControllerConfig(**controller_config))
    _WORKER.update(agent=agent, controller=controller, env=gym.make(env_id, **env_kwargs))


def _episode_return(task: tuple[np.ndarray, int, int, int | None, float]) -> float:
    flat, seed, sample_seed, patience, step_penalty = task
    controller = _WORKER["controller"]
    controller.load_flat_parameters(flat)
    return _WORKER["agent"].play(_WORKER["env"], 1, seed, controller, torch.Generator().manual_seed(sample_seed),
                                 patience=patience, step_penalty=step_penalty)[0]["return"]


class EnvFitness:
    """Mean return of each candidate over `rollouts` episodes of `env_id`, spread over `workers` processes (each
    loads V and M from their folders once; with `workers=1` everything runs in this process). All candidates of a
    generation meet the same `rollouts` tracks (reset seeds `seed`..`seed + rollouts - 1`), so they are ranked on
    equal terms."""

    def __init__(self, vae: str | os.PathLike, mdnrnn: str | os.PathLike, controller_config: ControllerConfig,
                 env_id: str, rollouts: int, workers: int = 1, patience: int | None = None,
                 step_penalty: float = 0.0, env_kwargs: dict[str, Any] | None = None) -> None:
        if rollouts < 1 or workers < 1:
            raise ValueError(f"expected rollouts >= 1 and workers >= 1, got {rollouts} and {workers}")
        self.rollouts, self.patience, self.step_penalty = rollouts, patience, step_penalty
        args = (str(vae), str(mdnrnn), controller_config.to_dict(), env_id, env_kwargs or {})
        if workers == 1:
            _init_worker(*args)
            self.pool = None
        else:
            self.pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=args)

    def __call__(self, candidates: np.ndarray, seed: int, rollouts: int | None = None,
                 full_episodes: bool = False) -> np.ndarray:
        """`(P, n)` candidates -> `(P,)` mean returns over `rollouts` (default: the constructor's) episodes; with
        `full_episodes`, no early stop (for evaluations)."""
        rollouts = rollouts or self.rollouts
        patience = None if full_episodes else self.patience
        tasks = [(flat, seed + r, seed + r, patience, self.step_penalty)
                 for flat in candidates for r in range(rollouts)]
        returns = self.pool.map(_episode_return, tasks, chunksize=1) if self.pool else list(map(_episode_return, tasks))
        return np.asarray(returns, dtype=np.float64).reshape(len(candidates), rollouts).mean(1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


# ---------------------------------------------------------------------------------------------------------------
# Fitness in the dream


@torch.no_grad()
def dream_returns(mdnrnn: MDNRNN, controller: Controller, candidates: np.ndarray | torch.Tensor,
                  start_latents: torch.Tensor, max_steps: int, temperature: float,
                  generator: torch.Generator | None = None) -> np.ndarray:
    """Mean return of each candidate `(P, n)` over dream rollouts from each start z `(N, D)`: C acts, M samples
    z_{t+1} at `temperature`, predicts the reward, and ends a rollout when its done head fires (drawn). All P x N
    rollouts step together as one batch. -> `(P,)`."""
    flat = torch.as_tensor(np.asarray(candidates), dtype=torch.float32)
    P, (N, D) = flat.shape[0], start_latents.shape
    if mdnrnn.reward_head is None:
        raise ValueError("training in the dream needs an MDN-RNN with a reward head (predict_reward=True)")
    z = start_latents.float()[None].expand(P, N, D).reshape(P * N, D)
    state = mdnrnn.initial_state(P * N)
    alive, total = torch.ones(P * N), torch.zeros(P * N)
    for _ in range(max_steps):
        action = controller.act_batched(flat, z.view(P, N, D), state[0][0].view(P, N, -1)).flatten(0, 1)
        h, state = mdnrnn.step(z, action, state)
        z, reward, done = mdnrnn.sample_next(h, temperature, generator)
        total += alive * reward
        if done is not None:
            alive = alive * (torch.rand(P * N, generator=generator) >= done).float()
            if not alive.any():
                break
    return total.view(P, N).mean(1).double().numpy()
