"""Train World Models (Ha & Schmidhuber 2018) step by step, as in the paper:

    python training/train_world_models.py --stage collect            # random-policy rollouts -> data/
    accelerate launch training/train_world_models.py --stage vae     # V on the frames
    accelerate launch training/train_world_models.py --stage mdnrnn  # M on V's (z, a, r, done) sequences
    python training/train_world_models.py --stage controller         # C by CMA-ES in the real env
    python training/train_world_models.py --stage dream --temperature 1.0   # C by CMA-ES inside M's dream only
    python training/train_world_models.py --stage assemble --dream-temperature 1.0   # the agent's Hub folder

Settings come from `training/configs/world_models_carracing.yaml` (a section per stage); every stage resumes with
`--resume` (collection skips the shards it has; V and M from their trainer checkpoints; CMA-ES from its state, saved
after each generation). Outputs go under the config's `output_dir`: `vae/model`, `mdnrnn/model`, `controller/model`,
`dream-t<temperature>/model` (each a Hub-ready folder), and `agent/`, the `WorldModelsAgent` bundling them. The
CMA-ES stages log each generation to `log.csv` and the periodic evaluations of the population mean to `eval.csv`.
The paper's iterative procedure: record new rollouts with the trained agent driving (`--stage collect --policy agent
--data data/carracing-iter1 --seed 500000`), then train V and M again on both (`--data data/carracing-rollouts
data/carracing-iter1`), and C on them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from accelerate import PartialState
from safetensors.numpy import load_file, save_file

from wm_hub.checkpoint import atomic_directory
from wm_hub.models.world_models.configuration_world_models import ControllerConfig, ConvVAEConfig, MDNRNNConfig
from wm_hub.models.world_models.data_world_models import (
    FrameDataset,
    LatentSequenceDataset,
    encode_rollouts,
    load_rollouts,
    record_rollouts,
)
from wm_hub.models.world_models.evolution_world_models import CMAES, EnvFitness, dream_returns
from wm_hub.models.world_models.modeling_world_models import MDNRNN, Controller, ConvVAE
from wm_hub.models.world_models.pipeline_world_models import WorldModelsAgent
from wm_hub.trainer import append_csv, load_yaml, run_config, train, write_snapshot_card

STAGES = ("collect", "vae", "mdnrnn", "controller", "dream", "assemble")
ES_STATE = "es_state"  # <run>/es_state/{arrays.safetensors, state.json}
TRAIN_EVAL_SEED = 900_000  # evaluations during training; `wm-hub eval` uses seeds 1000000+, training 0..899999


def controller_config(config: dict[str, Any], vae: ConvVAE, mdnrnn: MDNRNN) -> ControllerConfig:
    space = gym.make(config["env_id"]).action_space
    return ControllerConfig(latent_dim=vae.config.latent_dim, hidden_size=mdnrnn.config.hidden_size,
                            action_dim=int(space.shape[0]), action_low=space.low.tolist(),
                            action_high=space.high.tolist(), env_id=config["env_id"],
                            **config.get("controller_model", {}))


def save_es(folder: Path, es: CMAES) -> None:
    arrays, numbers = es.state()
    with atomic_directory(folder, replace=True) as tmp:
        save_file(arrays, tmp / "arrays.safetensors")
        (tmp / "state.json").write_text(json.dumps(numbers, indent=1))


def load_es(folder: Path) -> CMAES:
    return CMAES.from_state(load_file(folder / "arrays.safetensors"), json.loads((folder / "state.json").read_text()))


def evolve(run_dir: Path, settings: dict[str, Any], n: int, fitness, evaluate, resume: bool, seed: int,
           controller: Controller) -> None:
    """The CMA-ES loop shared by the real-env and dream stages. `fitness(candidates, generation)` -> `(P,)`;
    `evaluate(flat)` -> the population mean's score, every `eval_every` generations; the best-scoring mean is
    saved as `run_dir/model`."""
    state_dir = run_dir / ES_STATE
    if resume and (state_dir / "state.json").is_file():
        es = load_es(state_dir)
        print(f"resumed CMA-ES at generation {es.generation}")
    else:
        es = CMAES(np.zeros(n), settings["sigma"], settings["popsize"], seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("log.csv", "eval.csv"):
            (run_dir / name).unlink(missing_ok=True)
    best_eval = -np.inf
    if (run_dir / "eval.csv").is_file():
        best_eval = max(float(line.split(",")[1]) for line in (run_dir / "eval.csv").read_text().splitlines()[1:])
    while es.generation < settings["generations"]:
        tick = time.perf_counter()
        candidates = es.ask()
        scores = fitness(candidates, es.generation)
        es.tell(candidates, scores)
        row = {"generation": es.generation, "mean": scores.mean(), "max": scores.max(), "min": scores.min(),
               "sigma": float(es.es.sigma), "sec": time.perf_counter() - tick}
        append_csv(run_dir / "log.csv", row)
        print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        if es.generation % settings["eval_every"] == 0 or es.generation == settings["generations"]:
            score = evaluate(es.mean)
            append_csv(run_dir / "eval.csv", {"generation": es.generation, "score": score})
            print(f"generation {es.generation}: population mean scores {score:.1f}", flush=True)
            if score > best_eval:
                best_eval = score
                controller.load_flat_parameters(es.mean)
                controller.save_pretrained(run_dir / "model")
        save_es(state_dir, es)


def real_env_score(vae_dir: Path, mdnrnn_dir: Path, ccfg: ControllerConfig, config: dict[str, Any],
                   flat: np.ndarray, episodes: int, workers: int, seed: int = TRAIN_EVAL_SEED) -> float:
    """Mean return of one parameter vector over `episodes` full episodes (no early stop)."""
    fitness = EnvFitness(vae_dir, mdnrnn_dir, ccfg, config["env_id"], rollouts=episodes, workers=workers,
                         env_kwargs=config.get("env_kwargs"))
    try:
        return float(fitness(flat[None], seed, full_episodes=True)[0])
    finally:
        fitness.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--config", default="training/configs/world_models_carracing.yaml")
    parser.add_argument("--resume", action="store_true", help="continue the stage from its saved state")
    parser.add_argument("--max-steps", type=int, default=None, help="vae / mdnrnn: override the step count")
    parser.add_argument("--lr", type=float, default=None, help="vae / mdnrnn: override the learning rate")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--data", nargs="+", default=None,
                        help="rollout folder(s): collect writes the first, vae / mdnrnn / dream read them all")
    parser.add_argument("--policy", choices=["random", "agent"], default="random",
                        help="collect: random driving, or the trained agent (V, M and the real-env C) with noise, "
                             "the paper's iterative procedure")
    parser.add_argument("--episodes", type=int, default=None, help="collect: episodes in all")
    parser.add_argument("--seed", type=int, default=None, help="collect: first reset seed (default: the config's)")
    parser.add_argument("--workers", type=int, default=None, help="collect / controller / dream: processes")
    parser.add_argument("--generations", type=int, default=None, help="controller / dream: CMA-ES generations")
    parser.add_argument("--temperature", type=float, default=None, help="dream: M's sampling temperature")
    parser.add_argument("--vae", default=None, help="V's folder for the later stages (default: <output_dir>/vae/model)")
    parser.add_argument("--mdnrnn", default=None,
                        help="M's folder for the later stages (default: <output_dir>/mdnrnn/model)")
    parser.add_argument("--dream-temperature", type=float, default=None,
                        help="assemble: the dream-trained controller to bundle (default: none)")
    args = parser.parse_args(argv)

    config = load_yaml(args.config)
    root = Path(args.output_dir or config["output_dir"])
    data = args.data or [config["collect"]["data"]]
    vae_dir = Path(args.vae or root / "vae" / "model")
    mdnrnn_dir = Path(args.mdnrnn or root / "mdnrnn" / "model")
    vae_config = ConvVAEConfig(**config["vae"]["model"])

    if args.stage == "collect":
        c = config["collect"]
        agent = None
        if args.policy == "agent":
            agent = {"parts": {"vae": str(vae_dir), "mdnrnn": str(mdnrnn_dir),
                               "controller": str(root / "controller" / "model")}, "noise": c["agent_noise"]}
        shards = record_rollouts(config["env_id"], data[0], args.episodes or c["episodes"], vae_config,
                                 shard_episodes=c["shard_episodes"],
                                 seed=c["seed"] if args.seed is None else args.seed, max_steps=c.get("max_steps"),
                                 workers=args.workers or c.get("workers", 1), env_kwargs=config.get("env_kwargs"),
                                 agent=agent)
        print(f"{len(shards)} shards in {data[0]}")
        return 0

    if args.stage in ("vae", "mdnrnn"):
        section = config[args.stage]
        train_config = run_config(section["train"], args, output_dir=str(root / args.stage))
        episodes = load_rollouts(*data)
        if args.stage == "vae":
            model = ConvVAE(vae_config)
            dataset = FrameDataset(episodes)

            def step_fn(m: ConvVAE, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
                out = m(batch["frames"])
                return {"loss": out.loss, **out.logs}
        else:
            vae = ConvVAE.from_pretrained(vae_dir)
            model = MDNRNN(MDNRNNConfig(latent_dim=vae.config.latent_dim, action_dim=episodes[0]["actions"].shape[1],
                                        **section["model"]))
            dataset = LatentSequenceDataset(encode_rollouts(vae, episodes), section["seq_len"],
                                            stride=section.get("stride"), seed=train_config.seed)

            def step_fn(m: MDNRNN, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
                out = m(batch["latents"], batch["actions"], batch["rewards"], batch["dones"], batch["mask"])
                return {"loss": out.loss, **out.logs}
        print(f"{args.stage}: {len(dataset)} training items from {len(episodes)} episodes in {data}")
        model = train(model, dataset, step_fn, train_config, resume=args.resume)
        if PartialState().is_main_process:
            folder = Path(train_config.output_dir) / "model"
            model.save_pretrained(folder)
            part = "V, the convolutional VAE" if args.stage == "vae" else "M, the MDN-RNN"
            write_snapshot_card(
                folder, train_config, script="training/train_world_models.py", argv=argv,
                metric="reconstruction" if args.stage == "vae" else "z_nll",
                label=("squared error per frame, summed over pixels in [0, 1] units" if args.stage == "vae" else
                       "negative log-likelihood of z_{t+1} per dimension"),
                kind="loss", dataset=f"{config['env_id']} rollouts ({len(episodes)} episodes)",
                name=f"world-models-{args.stage}", family="world_models", pipeline_tag="reinforcement-learning",
                summary=f"World Models {part}, trained on {config['env_id']} rollouts; a training snapshot, bundled "
                        "by `WorldModelsAgent` with the controllers.",
                usage=f"from wm_hub import {type(model).__name__}\n"
                      f"model = {type(model).__name__}.from_pretrained('{folder}')",
                config=model.config.to_dict(),
            )
        return 0

    vae, mdnrnn = ConvVAE.from_pretrained(vae_dir), MDNRNN.from_pretrained(mdnrnn_dir)
    ccfg = controller_config(config, vae, mdnrnn)
    n = ccfg.num_parameters_flat

    if args.stage == "controller":
        s = {**config["controller"], **({"generations": args.generations} if args.generations else {})}
        workers = args.workers or s["workers"]
        fitness = EnvFitness(vae_dir, mdnrnn_dir, ccfg, config["env_id"], s["rollouts"], workers, s.get("patience"),
                             s.get("step_penalty", 0.0), config.get("env_kwargs"))
        try:
            evolve(root / "controller", s, n, lambda x, g: fitness(x, g * s["rollouts"]),
                   lambda flat: float(fitness(flat[None], TRAIN_EVAL_SEED, rollouts=s["eval_episodes"],
                                              full_episodes=True)[0]),
                   args.resume, s.get("seed", 0), Controller(ccfg))
        finally:
            fitness.close()
        return 0

    if args.stage == "dream":
        s = {**config["dream"], **({"generations": args.generations} if args.generations else {})}
        temperature = args.temperature or s["temperature"]
        generator = torch.Generator().manual_seed(s.get("seed", 0))
        # dreams start from the first frames of real tracks (training reset seeds), as V encodes them
        env = gym.make(config["env_id"], **config.get("env_kwargs", {}))
        starts = np.stack([env.reset(seed=seed)[0] for seed in range(s["start_frames"])])
        with torch.no_grad():
            mu, logvar = vae.encode(vae.preprocess(starts))
        controller = Controller(ccfg)

        def fitness(candidates: np.ndarray, generation: int) -> np.ndarray:
            pick = torch.randint(len(mu), (s["rollouts"],), generator=generator)
            z0 = mu[pick] + (0.5 * logvar[pick]).exp() * torch.randn(len(pick), mu.shape[1], generator=generator)
            return dream_returns(mdnrnn, controller, candidates, z0, s["max_steps"], temperature, generator)

        def evaluate(flat: np.ndarray) -> float:  # in the dream too: the real env is never seen while training
            return float(np.mean([fitness(flat[None], -1)[0] for _ in range(s["eval_batches"])]))

        run_dir = root / f"dream-t{temperature:.2f}"
        evolve(run_dir, s, n, fitness, evaluate, args.resume, s.get("seed", 0), Controller(ccfg))
        trained = Controller.from_pretrained(run_dir / "model")
        score = real_env_score(vae_dir, mdnrnn_dir, ccfg, config, trained.flat_parameters(),
                               s["real_episodes"], args.workers or s.get("workers", 1))
        (run_dir / "real_env.json").write_text(json.dumps({"temperature": temperature, "episodes": s["real_episodes"],
                                                           "mean_return": score, "seed": TRAIN_EVAL_SEED}, indent=1))
        print(f"dream-trained controller (temperature {temperature}): mean return {score:.1f} over "
              f"{s['real_episodes']} real episodes")
        return 0

    # assemble
    dream = None
    if args.dream_temperature is not None:
        dream = Controller.from_pretrained(root / f"dream-t{args.dream_temperature:.2f}" / "model")
    agent = WorldModelsAgent(vae, mdnrnn, Controller.from_pretrained(root / "controller" / "model"), dream)
    agent.save_pretrained(root / "agent")
    print(f"wrote {root / 'agent'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
