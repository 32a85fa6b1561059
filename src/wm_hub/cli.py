"""`wm-hub` command line: list, info, demo, push, data."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _format_metrics(metrics: dict[str, float], limit: int = 3) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:limit])


def cmd_list(args: argparse.Namespace) -> int:
    from wm_hub.hub import list_models, shipped_dir

    models = list_models()
    if not models:
        print(f"no checkpoints shipped in {shipped_dir()}")
        return 0
    rows = [
        [m.name, m.family, m.pipeline_tag or "-", f"{m.parameters / 1e6:.2f}M", _format_metrics(m.metrics)]
        for m in models
    ]
    print(_table(rows, ["name", "family", "pipeline", "params", "headline metrics"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from wm_hub.hub import model_info

    info = model_info(args.name)
    print(f"name:       {info.name}\nfamily:     {info.family}\npipeline:   {info.pipeline_tag}")
    print(f"parameters: {info.parameters:,}\npath:       {info.path}")
    for key, value in info.metrics.items():
        print(f"  {key}: {value:.4g}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Check the install, then run every shipped model family's demo."""
    import torch

    from wm_hub.auto import register_auto_classes
    from wm_hub.hub import list_models, load

    print("wm_hub install check")
    for pkg in ("torch", "transformers", "diffusers", "accelerate", "huggingface-hub", "datasets", "gymnasium"):
        print(f"  {pkg:16s} {importlib.metadata.version(pkg)}")
    start = time.perf_counter()
    x = torch.randn(256, 256)
    torch.testing.assert_close((x @ torch.eye(256)), x)
    print(f"  torch CPU matmul ok ({(time.perf_counter() - start) * 1e3:.1f} ms), threads={torch.get_num_threads()}")
    register_auto_classes()
    models = list_models()
    print(f"\n{len(models)} shipped checkpoint(s)")
    if models:
        cmd_list(args)
    for info in models:
        evaluation = _family_module(info.family, "evaluation")
        if evaluation is None or not hasattr(evaluation, "demo"):
            print(f"{info.name}: family {info.family!r} has no demo")
            continue
        print(evaluation.demo(load(info.path), args.out, info.name))
    return 0


def _family_module(family: str, kind: str):
    """`wm_hub.models.<family>.<kind>_<family>`, or None if the family has no such module."""
    import importlib
    import importlib.util

    name = f"wm_hub.models.{family}.{kind}_{family}"
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # no such family package
        found = False
    return importlib.import_module(name) if found else None


def cmd_push(args: argparse.Namespace) -> int:
    from wm_hub.hub import push

    url = push(args.name, args.repo_id, token=args.token, private=args.private)
    print(f"pushed {args.name} to {url}")
    return 0


def _save_and_report(ds, out: str, **summary) -> int:
    """Save a recorded dataset to `out` and print a JSON summary of it."""
    from wm_hub.data import save_dataset

    save_dataset(ds, out)
    print(json.dumps({"path": str(Path(out).resolve()), "rows": len(ds), **summary}))
    return 0


def cmd_data_make(args: argparse.Namespace) -> int:
    from wm_hub.data import record_episodes

    size = (args.image_size, args.image_size) if args.image_size else None
    ds = record_episodes(args.env_id, args.episodes, max_steps=args.max_steps, seed=args.seed, image_size=size)
    return _save_and_report(ds, args.out, episodes=args.episodes, columns=ds.column_names)


def cmd_data_platformer(args: argparse.Namespace) -> int:
    from wm_hub.data import record_episodes
    from wm_hub.envs.platformer import ExplorationPolicy, PlatformerEnv

    ds = record_episodes(PlatformerEnv(), args.episodes, policy=ExplorationPolicy(args.seed),
                         max_steps=args.max_steps, seed=args.seed)
    return _save_and_report(ds, args.out, episodes=args.episodes, levels=[args.seed, args.seed + args.episodes - 1])


def cmd_data_dino_wm(args: argparse.Namespace) -> int:
    """DINO-WM's envs (Wall, PointMaze, PushT), recorded with their exploration policies."""
    from wm_hub.data import record_episodes
    from wm_hub.envs.point_maze import PointMazeEnv, PointMazeExplorationPolicy
    from wm_hub.envs.pusht import PushTExplorationPolicy, PushTTasks
    from wm_hub.envs.wall import WallEnv, WallExplorationPolicy

    env, policy = {"dino-wm-wall": (WallEnv, WallExplorationPolicy),
                   "dino-wm-pointmaze": (PointMazeEnv, PointMazeExplorationPolicy),
                   "dino-wm-pusht": (PushTTasks, PushTExplorationPolicy)}[args.source]
    ds = record_episodes(env(max_episode_steps=args.max_steps), args.episodes, policy=policy(args.seed),
                         seed=args.seed, info_keys=("proprio",))
    return _save_and_report(ds, args.out, episodes=args.episodes, seeds=[args.seed, args.seed + args.episodes - 1])


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint with its family's evaluation module; optionally write its card."""
    from wm_hub.hub import load, resolve

    if args.write_card and not args.training_notes:
        raise ValueError("--write-card needs --training-notes FILE, the card's training section")
    folder = resolve(args.name)
    model = load(folder)
    family = type(model).__module__.split(".")[2]  # wm_hub.models.<family>.<module>
    evaluation = _family_module(family, "evaluation")
    if evaluation is None:
        raise ValueError(f"{args.name} is a {type(model).__name__}; family {family!r} has no evaluation yet")
    if args.write_card and not hasattr(evaluation, "write_card"):
        raise ValueError(f"family {family!r} has no card writer yet; run without --write-card")
    needs_data = getattr(evaluation, "NEEDS_DATA", True)
    if needs_data and args.data is None:
        raise ValueError(f"{args.name} is evaluated on held-out data: pass --data FOLDER")
    count = args.count or (64 if needs_data else 20)
    metrics = evaluation.evaluate(model, args.data, count=count)
    for m in metrics:
        print(f"{m.name:45s} {m.value:8.4f} {m.unit}")
    if args.write_card:
        from wm_hub.hub import shipped_dir

        shipped = folder.resolve().parent == shipped_dir().resolve()
        source = f"--data {args.data} --count {count}" if needs_data else f"--episodes {count}"
        command = f"wm-hub eval {folder.name if shipped else args.name} {source}"
        evaluation.write_card(folder, model, metrics, command, Path(args.training_notes).read_text())
        print(f"wrote {folder / 'README.md'}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Plan with a DINO-WM in its env over held-out tasks: success rates, a GIF, optionally the card."""
    from wm_hub.checkpoint import atomic_file
    from wm_hub.hub import load, resolve
    from wm_hub.models.dino_wm import evaluation_dino_wm as evaluation
    from wm_hub.models.dino_wm.modeling_dino_wm import DinoWMModel
    from wm_hub.models.dino_wm.planning_dino_wm import planner_settings

    if args.write_card and not args.training_notes:
        raise ValueError("--write-card needs --training-notes FILE, the card's training section")
    folder = resolve(args.name)
    model = load(folder)
    if not isinstance(model, DinoWMModel):
        raise ValueError(f"wm-hub plan needs a DINO-WM model; {args.name} is a {type(model).__name__}")
    settings: dict[str, dict] = {"cem": {}, "gd": {}}
    if args.iterations:
        settings = {name: {"iterations": args.iterations} for name in settings}
    if args.samples:
        settings["cem"].update(num_samples=args.samples, topk=max(1, args.samples // 10))
    if args.noise_beta is not None:
        settings["cem"]["noise_beta"] = args.noise_beta
    metrics = evaluation.evaluate(model, args.episodes, tuple(args.planner), args.max_plans, settings)
    for m in metrics:
        print(f"{m.name:55s} {m.value:8.3f} {m.unit}")
    first = args.planner[0]
    print(f"wrote {evaluation.plan_gif(model, args.out, folder.name, first, args.max_plans, settings[first])[0]}")
    if args.write_card:
        knobs = "".join(f" --{k} {v}" for k, v in (("iterations", args.iterations), ("samples", args.samples),
                                                           ("noise-beta", args.noise_beta)) if v is not None)
        command = (f"wm-hub plan {folder.name} --episodes {args.episodes} --planner {' '.join(args.planner)} "
                   f"--max-plans {args.max_plans}{knobs}")
        measured = {name: planner_settings(model, name, settings[name]) for name in args.planner}
        model.config.planner_settings = {**model.config.planner_settings, **{k: v for k, v in measured.items() if v}}
        with atomic_file(folder / "config.json") as tmp:  # planners made by name start from the card's settings
            model.config.to_json_file(tmp)
        evaluation.write_card(folder, model, metrics, command, Path(args.training_notes).read_text())
        print(f"wrote {folder / 'README.md'}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from wm_hub.hub import load
    from wm_hub.models.genie.pipeline_genie import GeniePipeline
    from wm_hub.models.genie.play_genie import PlayServer, platformer_prompts

    pipe = load(args.name)
    if not isinstance(pipe, GeniePipeline):
        raise ValueError(f"wm-hub play needs a Genie pipeline; {args.name} is a {type(pipe).__name__}")
    server = PlayServer((args.host, args.port), pipe, platformer_prompts(), args.name, steps=args.steps,
                        temperature=args.temperature)
    host, port = server.server_address[:2]
    print(f"playing {args.name} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_data_physics(args: argparse.Namespace) -> int:
    from wm_hub.envs.physics import record_physics_clips

    ds = record_physics_clips(args.num_clips, seed=args.seed, frames=args.frames, workers=args.workers,
                              agent=args.agent, actions_per_scene=args.actions_per_scene)
    last = args.seed + (args.num_clips - 1) // args.actions_per_scene
    return _save_and_report(ds, args.out, clips=args.num_clips, seeds=[args.seed, last])


def cmd_data_camera(args: argparse.Namespace) -> int:
    from wm_hub.envs.camera_scene import record_camera_clips

    ds = record_camera_clips(args.num_clips, seed=args.seed, frames=args.frames, workers=args.workers)
    return _save_and_report(ds, args.out, clips=args.num_clips, seeds=[args.seed, args.seed + args.num_clips - 1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wm-hub", description="A hub of world models.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the shipped checkpoints").set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show one checkpoint's card")
    p.add_argument("name", help="a shipped name, a folder or a Hub repo id")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="check the install and run the shipped models")
    p.add_argument("--out", default="outputs/demo", help="folder for the demos' GIFs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("play", help="play a Genie world model in the browser")
    p.add_argument("name", help="a shipped name, a folder or a Hub repo id")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--steps", type=int, default=None, help="MaskGIT steps per frame (default: the model's)")
    p.add_argument("--temperature", type=float, default=None,
                   help="MaskGIT sampling temperature, 0 for greedy (default: the model's); with greedy "
                        "decoding `--steps 2` is the fast setting of the README's speed table")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("plan", help="plan with a DINO-WM in its env: success rates over held-out tasks")
    p.add_argument("name", help="a shipped name, a folder or a Hub repo id")
    p.add_argument("--episodes", type=int, default=50, help="held-out tasks (seeds 1000000+)")
    p.add_argument("--planner", nargs="+", choices=["cem", "gd"], default=["cem", "gd"])
    p.add_argument("--max-plans", type=int, default=10, help="MPC re-plans per task")
    # Defaults: the settings the model's card measured (its config's planner_settings), else DINO-WM's
    p.add_argument("--iterations", type=int, default=None, help="planner iterations (else CEM 30, GD 100)")
    p.add_argument("--samples", type=int, default=None, help="CEM samples per iteration (else 300; top 10%%)")
    p.add_argument("--noise-beta", type=float, default=None,
                   help="CEM noise coloured along time, power ~ 1/f^beta as in iCEM (else 0: white, DINO-WM's)")
    p.add_argument("--out", default="outputs/plan", help="folder for the GIF of a planned episode")
    p.add_argument("--write-card", action="store_true",
                   help="write the numbers on the checkpoint's card (and the planner settings into its config)")
    p.add_argument("--training-notes", default=None, help="the card's training section (a text file)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("eval", help="evaluate a checkpoint on held-out data (numbers for its card)")
    p.add_argument("name", help="a shipped name, a folder or a Hub repo id")
    p.add_argument("--data", default=None, help="held-out dataset folder, e.g. data/platformer-eval (not for agents, "
                                                "which are evaluated in their environment)")
    p.add_argument("--count", "--episodes", dest="count", type=int, default=None,
                   help="clips per metric (default 64), or episodes for an agent (default 20)")
    p.add_argument("--write-card", action="store_true", help="write the numbers into the checkpoint's card")
    p.add_argument("--training-notes", default=None, help="with --write-card: a file describing the training")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub")
    p.add_argument("name", help="a shipped name or a folder")
    p.add_argument("repo_id", help="the Hub repo to create or update, e.g. me/genie-platformer-64")
    p.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=cmd_push)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    make = data.add_parser("make", help="generate a dataset").add_subparsers(dest="source", required=True)
    def source(name: str, help: str, func, count: str, count_help: str, count_default: int, seed_help: str):
        p = make.add_parser(name, help=help)
        p.add_argument(count, type=int, default=count_default, help=count_help)
        p.add_argument("--seed", type=int, default=0, help=seed_help)
        p.add_argument("--out", required=True, help="output folder (Hugging Face dataset)")
        p.set_defaults(func=func)
        return p

    p = source("gym", "record random-policy episodes of any gymnasium env", cmd_data_make, "--episodes",
               "episodes to record", 10, "seed of the first episode")
    p.add_argument("--env-id", required=True, help="gymnasium id, e.g. CartPole-v1")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--image-size", type=int, default=64, help="square frame size; 0 keeps the env's")
    p = source("platformer", "the Genie platformer, played by its exploration policy", cmd_data_platformer,
               "--episodes", "one level per episode", 300, "first level seed (held-out levels: 1000000)")
    p.add_argument("--max-steps", type=int, default=200)
    p = source("physics", "captioned 2D physics clips (pymunk)", cmd_data_physics, "--num-clips",
               "one scene (seed) per clip", 1000, "first scene seed (held-out scenes: 1000000)")
    p.add_argument("--frames", type=int, default=33, help="frames per clip")
    p.add_argument("--workers", type=int, default=1, help="processes recording in parallel (the same dataset)")
    p.add_argument("--agent", choices=["paddle", "pusher"], default="paddle",
                   help="paddle: the captioned dataset; pusher: a 2-D pushing agent, the action-control dataset")
    p.add_argument("--actions-per-scene", type=int, default=1,
                   help="pusher: record each scene under this many action sequences (consecutive clips)")
    p = source("camera", "a 3D scene of boxes flown through by a camera (K and poses per frame)", cmd_data_camera,
               "--num-clips", "one scene (seed) and camera path per clip", 1000,
               "first scene seed (held-out scenes: 1000000)")
    p.add_argument("--frames", type=int, default=17, help="frames per clip")
    p.add_argument("--workers", type=int, default=1, help="processes recording in parallel (the same dataset)")
    for name, what in (("dino-wm-wall", "DINO-WM's Wall: a point agent and a wall with a door"),
                       ("dino-wm-pointmaze", "DINO-WM's PointMaze: a point mass in a U-maze"),
                       ("dino-wm-pusht", "DINO-WM's PushT (gym-pusht): an agent pushes a T-shaped block")):
        p = source(name, what, cmd_data_dino_wm, "--episodes", "one start (seed) per episode", 1000,
                   "first episode seed (held-out: 1000000)")
        p.add_argument("--max-steps", type=int, default=100)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from wm_hub.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, ValueError) as err:
        print(f"wm-hub: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
