"""A small accelerate training loop shared by the training scripts: devices, mixed precision,
gradient accumulation, warmup + cosine learning rate, resumable checkpoints, tqdm, CSV log.

The same code runs on one CPU, `accelerate launch --cpu --num_processes 2` (gloo) and many GPUs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from wm_hub.checkpoint import atomic_directory

StepFn = Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def check_settings(cls: type, values: dict[str, Any], what: str) -> None:
    """Refuse `values` with keys that are not fields of the dataclass `cls`, naming them and the known ones."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; expected some of {sorted(known)}")


@dataclass
class TrainConfig:
    """Optimisation settings of one training run (a section of a training YAML)."""

    output_dir: str = "outputs/run"
    steps: int = 1000
    batch_size: int = 8  # per process
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    mixed_precision: str = "no"
    log_every: int = 10
    save_every: int = 250
    num_workers: int = 0
    seed: int = 0
    # Validation (the training script supplies the function): at the start, every `validate_every` steps
    # and at the end, its metrics go to `output_dir/val_log.csv`; with `select_metric`, the model that maximises that
    # metric is kept in `output_dir/best` and is the one `train` returns (checkpoint selection).
    validate_every: int = 0
    select_metric: str | None = None
    # A small copy of each checkpoint (float16 weights, no optimiser state) to commit, so that a run can
    # go on on another machine; `--resume` falls back to it when `output_dir/checkpoint` is missing.
    portable_dir: str | None = None
    # A wall-clock budget (minutes; 0: none): training stops, saving, at whichever of `steps` and this comes
    # first, and the cosine decay runs over whichever is nearer (e.g. a run sized for a lent GPU's time).
    time_limit_minutes: float = 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        check_settings(cls, values, "training settings")
        if values.get("mixed_precision") is False:  # YAML reads a bare `no` as false
            values = {**values, "mixed_precision": "no"}
        if "betas" in values:
            values = {**values, "betas": tuple(values["betas"])}
        return cls(**values)

    def lr_factor(self, step: int, time_progress: float = 0.0) -> float:
        """Linear warmup, then cosine decay to `min_lr_ratio` over the steps, or over the time limit where
        `time_progress` (the share of it used) is further along."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        progress = min(1.0, max(progress, time_progress))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


STATE_META, STATE_TENSORS = "trainer_state.json", "trainer_state.safetensors"
SELECTION = "selection.json"  # in output_dir/best: the step and validation metrics of the kept model


def save_training_state(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler: Any, step: int,
    config: TrainConfig, dtype: torch.dtype | None = None,
) -> None:
    """Write model, optimiser, scheduler and RNG state to `folder` as safetensors + JSON (no pickle),
    through a temporary folder and a rename. Without an `optimizer` and with a `dtype` (e.g. float16),
    it writes a small portable state, for carrying a run across machines in git."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().to(dtype or v.dtype).clone().contiguous()
               for k, v in model.state_dict().items()}
    optim = optimizer.state_dict() if optimizer is not None else {"state": {}, "param_groups": None}
    scalars = {}
    for index, state in optim["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "config": asdict(config), "param_groups": optim["param_groups"],
            "optim_scalars": scalars, "scheduler": scheduler.state_dict()}
    with atomic_directory(folder, replace=True) as tmp:
        save_file(tensors, tmp / STATE_TENSORS)
        (tmp / STATE_META).write_text(json.dumps(meta, indent=1))


def load_training_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
    """Restore what `save_training_state` wrote; return the step to continue from. A portable state (no
    optimiser state) restores the weights, step and schedule; the optimiser starts afresh. The schedule goes on
    from the saved step with this run's peak learning rates (the scheduler's `base_lrs`, from the optimiser it
    was built on), so a resumed run given another `--lr` uses it."""
    from safetensors.torch import load_file

    base_lrs = list(scheduler.base_lrs)
    meta = json.loads((folder / STATE_META).read_text())
    tensors = load_file(folder / STATE_TENSORS)
    weights = model.state_dict()
    model.load_state_dict({k[6:]: v.to(weights[k[6:]].dtype) for k, v in tensors.items() if k.startswith("model.")})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    if meta["param_groups"] is not None:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for key, value in meta["optim_scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.base_lrs = base_lrs
    lrs = [base * factor(scheduler.last_epoch) for base, factor in zip(base_lrs, scheduler.lr_lambdas, strict=True)]
    for group, base, lr in zip(optimizer.param_groups, base_lrs, lrs, strict=True):
        group["initial_lr"], group["lr"] = base, lr
    scheduler._last_lr = lrs  # what get_last_lr() reports until the next step
    return int(meta["step"])


def _forever(loader: DataLoader, seed: int, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(seed + epoch)
        yield from loader
        epoch += 1


def train(
    model: nn.Module,
    dataset: Dataset,
    step_fn: StepFn,
    config: TrainConfig,
    resume: bool = False,
    frozen: tuple[nn.Module, ...] = (),
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    after_step: Callable[[nn.Module, int], None] | None = None,
) -> nn.Module:
    """Train `model` for `config.steps` optimiser steps; return the unwrapped model (with
    `config.select_metric`, the best validated one).

    `step_fn(model, batch)` returns a dict with a `loss` tensor and any other scalars to log.
    `frozen` modules are moved to the device and kept in eval mode without gradients (stop-gradient).
    `validate(model)` (run in eval mode without gradients, on the main process) returns named scalars.
    `after_step(model, step)` runs after each optimiser step (e.g. an EMA teacher's update), with the
    unwrapped model and the number of steps done.
    State is saved to `output_dir/checkpoint` every `save_every` steps; `resume=True` continues from it.
    A run that meets `config.time_limit_minutes` saves and stops there, and sets `config.steps` to the steps
    done, so what reports the run afterwards (e.g. a snapshot card) names them.
    """
    if config.validate_every and validate is None:
        raise ValueError("validate_every is set but no validate function was given")
    if config.select_metric and not config.validate_every:
        raise ValueError(f"select_metric {config.select_metric!r} needs validate_every > 0")
    out = Path(config.output_dir)
    mixed_precision = supported_mixed_precision(config.mixed_precision, PartialState().device)
    accelerator = Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=config.grad_accum)
    if accelerator.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # batches keep one shape: let cuDNN pick its fastest kernels once
    set_seed(config.seed)
    for module in frozen:
        module.requires_grad_(False).eval().to(accelerator.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers, generator=torch.Generator().manual_seed(config.seed))
    # The scheduler is not prepared: accelerate would step it once per process, and `steps` counts
    # optimiser steps whatever the number of processes.
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    clock, budget = time.perf_counter(), 60.0 * config.time_limit_minutes
    time_used = [0.0]  # share of the time limit used, the same on every process (their learning rates must agree)

    def measure_time() -> None:
        if budget > 0:
            elapsed = torch.tensor((time.perf_counter() - clock) / budget, device=accelerator.device)
            time_used[0] = accelerator.reduce(elapsed, "max").item()

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer,
                                                  lambda step: config.lr_factor(step, time_used[0]))

    start = 0
    state_dir = out / "checkpoint"
    portable = Path(config.portable_dir) if config.portable_dir else None
    if resume and (state_dir / STATE_META).is_file():
        start = load_training_state(state_dir, accelerator.unwrap_model(model), optimizer, scheduler)
        accelerator.print(f"resumed from {state_dir} at step {start}")
    elif resume and portable is not None and (portable / STATE_META).is_file():
        start = load_training_state(portable, accelerator.unwrap_model(model), optimizer, scheduler)
        accelerator.print(f"resumed from the portable state {portable} at step {start} (fresh optimiser state)")
    elif resume:
        accelerator.print(f"no checkpoint in {state_dir}: starting from scratch")

    def save(step: int) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            save_training_state(state_dir, unwrapped, optimizer, scheduler, step, config)
            if portable is not None:
                save_training_state(portable, unwrapped, None, scheduler, step, config, dtype=torch.float16)
        accelerator.wait_for_everyone()

    log_path, val_log_path, best_dir = out / "log.csv", out / "val_log.csv", out / "best"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if start == 0:
            log_path.unlink(missing_ok=True)
            val_log_path.unlink(missing_ok=True)
            shutil.rmtree(best_dir, ignore_errors=True)
    kept = read_selection(out)
    best = kept["metrics"][config.select_metric] if kept and config.select_metric else -math.inf

    def run_validation(step: int) -> None:
        nonlocal best
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model).eval()
            with torch.no_grad():
                values = {k: float(v) for k, v in validate(unwrapped).items()}
            unwrapped.train()
            append_csv(val_log_path, {"step": step, **values})
            accelerator.print(f"validation at step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
            if config.select_metric:
                if config.select_metric not in values:
                    raise KeyError(f"select_metric {config.select_metric!r} is not among the validation "
                                   f"metrics {sorted(values)}")
                if values[config.select_metric] > best:
                    best = values[config.select_metric]
                    with atomic_directory(best_dir, replace=True) as tmp:
                        unwrapped.save_pretrained(tmp)
                        (tmp / SELECTION).write_text(json.dumps({"step": step, "metrics": values}, indent=1))
        accelerator.wait_for_everyone()
    if config.validate_every and start == 0:
        run_validation(0)  # the starting point, e.g. the model being fine-tuned, is a candidate too
    batches = _forever(loader, config.seed, start)
    model.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=out.name,
               disable=not accelerator.is_main_process)
    tick, last_logged_step = time.perf_counter(), start
    for step in bar:
        logs: dict[str, torch.Tensor] = {}
        for _ in range(config.grad_accum):
            batch = next(batches)
            with accelerator.accumulate(model):
                logs = step_fn(model, batch)
                accelerator.backward(logs["loss"])
                if accelerator.sync_gradients and config.grad_clip:
                    accelerator.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if after_step is not None:
            after_step(accelerator.unwrap_model(model), done)
        measure_time()
        out_of_time = time_used[0] >= 1.0
        if done % config.log_every == 0 or done == config.steps or out_of_time:
            values = {k: accelerator.reduce(v.detach().float(), "mean").item() for k, v in logs.items()}
            row = {"step": done, "lr": scheduler.get_last_lr()[0], **values,
                   "sec_per_step": (time.perf_counter() - tick) / (done - last_logged_step)}
            tick, last_logged_step = time.perf_counter(), done
            if accelerator.is_main_process:
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
                append_csv(log_path, row)
        if config.validate_every and (done % config.validate_every == 0 or done == config.steps or out_of_time):
            run_validation(done)
        if done % config.save_every == 0 or done == config.steps or out_of_time:
            save(done)
        if out_of_time:
            accelerator.print(f"time limit of {config.time_limit_minutes:g} minutes reached at step {done} of "
                              f"{config.steps}: stopping")
            config.steps = done
            break
    unwrapped = accelerator.unwrap_model(model)
    if config.select_metric and (best_dir / SELECTION).is_file():
        return type(unwrapped).from_pretrained(best_dir).to(accelerator.device)
    return unwrapped


def append_csv(path: Path, row: dict[str, Any]) -> None:
    new_file = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def read_selection(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The step and validation metrics of the model `train` kept in `output_dir/best`, or None."""
    path = Path(output_dir) / "best" / SELECTION
    return json.loads(path.read_text()) if path.is_file() else None


def supported_mixed_precision(requested: str, device: torch.device) -> str:
    """`requested`, except bf16 on a CPU without bf16 instructions (AVX-512 BF16 or AMX), which gets "no"
    with a warning: there autocast emulates bf16, and its matmuls ran 10x slower than fp32 (AVX2 EPYC, 2 cores;
    a Genie dynamics training step took over 30 s instead of 5.5 s)."""
    if requested != "bf16" or device.type != "cpu":
        return requested
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)() or getattr(
        torch.cpu, "_is_amx_tile_supported", lambda: False)()
    if native:
        return requested
    warnings.warn("mixed_precision bf16 asked for, but this CPU has no bf16 instructions (AVX-512 BF16 or AMX): "
                  "training in fp32, which is several times faster here", stacklevel=2)
    return "no"


def add_run_arguments(parser: argparse.ArgumentParser, default_config: str) -> None:
    """The arguments every training script takes: --config, --resume, --max-steps, --lr, --output-dir, --data."""
    parser.add_argument("--config", default=default_config)
    parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoint")
    parser.add_argument("--max-steps", type=int, default=None, help="override the step count")
    parser.add_argument("--lr", type=float, default=None, help="override the peak learning rate (e.g. to fine-tune)")
    parser.add_argument("--output-dir", default=None, help="override the output folder")
    parser.add_argument("--data", default=None, help="override the training dataset folder")
    parser.add_argument("--batch-size", type=int, default=None, help="override the per-process batch size")
    parser.add_argument("--num-workers", type=int, default=None, help="override the data loader's worker processes")
    parser.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                        help="stop (saving) after this many minutes; the learning rate decays over whichever of "
                             "the steps and the time ends first")


def run_config(train_section: dict[str, Any], args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of a config's `train` section with the command line's overrides (--max-steps, --lr,
    --output-dir, --batch-size, --num-workers, --time-limit, and any given here) applied where set."""
    values = {"steps": args.max_steps, "lr": getattr(args, "lr", None), "output_dir": args.output_dir,
              "batch_size": getattr(args, "batch_size", None), "num_workers": getattr(args, "num_workers", None),
              "time_limit_minutes": getattr(args, "time_limit", None), **overrides}
    return TrainConfig.from_dict({**train_section, **{k: v for k, v in values.items() if v}})


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training YAML file into a dict, with an error naming the file."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no training config at {path}")
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a mapping of settings, got {type(data).__name__}")
    return data


def last_logged(log_path: str | os.PathLike, key: str, rows: int = 5, until_step: int | None = None) -> float:
    """Mean of `key` over the last `rows` rows of a training CSV log (the numbers a training card reports),
    or over the last `rows` rows up to `until_step` (a model kept by checkpoint selection)."""
    with open(log_path) as f:
        logged = [r for r in csv.DictReader(f) if until_step is None or int(r["step"]) <= until_step]
    if not logged:
        upto = f" up to step {until_step}" if until_step is not None else ""
        raise ValueError(f"{log_path} has no rows of {key!r}{upto}")
    values = [float(r[key]) for r in logged][-rows:]
    return sum(values) / len(values)


def write_snapshot_card(
    folder: str | os.PathLike,
    train_config: TrainConfig,
    *,
    script: str,
    argv: list[str] | None,
    metric: str,
    kind: str,
    dataset: str,
    label: str | None = None,
    unit: str = "",
    until_step: int | None = None,
    training: str = "",
    limitations: str = "Training-set numbers only.",
    **card: Any,
) -> None:
    """Model card of a training run's output `folder`: the mean of `metric` over the last five rows of the run's
    `log.csv` (up to `until_step` for a model kept by checkpoint selection), the command that ran
    (`accelerate launch <script> <argv>`, `argv` None for the process's own), and the run's steps, batch and
    learning rate before `training`. `card` holds `write_model_card`'s other fields (name, family,
    pipeline_tag, summary, usage, config, ...)."""
    from wm_hub.cards import Metric, write_model_card

    log = Path(train_config.output_dir) / "log.csv"
    span = f" up to the kept step {until_step}" if until_step is not None else ""
    # a model kept at step 0 (the starting point): the first logged rows are the nearest training numbers
    value = last_logged(log, metric, until_step=None if until_step is None else max(until_step,
                                                                                    train_config.log_every))
    arguments = sys.argv[1:] if argv is None else argv
    write_model_card(
        folder,
        metrics=[Metric(f"train {label or metric} (last {5 * train_config.log_every} steps{span})", value, kind,
                        dataset, unit)],
        command=" ".join(["accelerate launch", script, *arguments]),
        dataset=dataset,
        training=f"{train_config.steps} steps, batch {train_config.batch_size} per process, lr {train_config.lr}; "
                 f"log in {log}.{' ' + training if training else ''}",
        limitations=limitations,
        **card,
    )
