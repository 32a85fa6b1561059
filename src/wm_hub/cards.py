"""Model-card writer: YAML metadata through `huggingface_hub.ModelCardData`, measured results, and the
command that reproduces them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from wm_hub.checkpoint import atomic_file


@dataclass(frozen=True)
class Metric:
    """One measured number. `type` is the metric's id on the Hub (e.g. `psnr`), `name` its label."""

    name: str
    value: float
    type: str
    dataset: str
    unit: str = ""


_HIDDEN = {"transformers_version", "architectures"}


def emit_markdown(text: str, out: str | os.PathLike | None = None) -> None:
    """Print `text` (a markdown table, say) and, with `out`, also write it there through a temporary file."""
    print(text)
    if out:
        with atomic_file(out) as tmp:
            tmp.write_text(text + "\n")


def _public(value: Any) -> Any:
    """A config value without its private (`_name_or_path`, `_class_name`, ...) entries, at any depth."""
    if isinstance(value, Mapping):
        return {k: _public(v) for k, v in value.items() if not str(k).startswith("_") and k not in _HIDDEN}
    return value


def _config_table(config: Mapping[str, Any]) -> str:
    rows = ["| field | value |", "|---|---|"]
    for key, value in sorted(_public(config).items()):
        rows.append(f"| `{key}` | `{json.dumps(value, default=str)}` |")
    return "\n".join(rows)


def write_model_card(
    folder: str | os.PathLike,
    *,
    name: str,
    family: str,
    pipeline_tag: str,
    summary: str,
    metrics: Sequence[Metric],
    command: str,
    usage: str,
    dataset: str,
    training: str,
    limitations: str,
    config: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    license: str = "apache-2.0",
) -> ModelCard:
    """Write `folder/README.md`: YAML metadata (`library_name: wm_hub`, `pipeline_tag`, `tags`,
    `datasets`, `model-index` with every metric), then summary, usage, results with the command
    that reproduces them, training, limitations and the configuration. Returns the card."""
    if not metrics:
        raise ValueError("a model card needs at least one measured metric")
    if not command.strip():
        raise ValueError("a model card needs the command that reproduces its numbers")
    data = ModelCardData(
        library_name="wm_hub",
        license=license,
        pipeline_tag=pipeline_tag,
        tags=["wm_hub", "world-model", family, *tags],
        datasets=[dataset],
        model_name=name,
        eval_results=[
            EvalResult(
                task_type=pipeline_tag,
                dataset_type=dataset,
                dataset_name=dataset,
                metric_type=m.type,
                metric_name=m.name,
                metric_value=float(m.value),
            )
            for m in metrics
        ],
        wm_hub_family=family,
    )
    results = ["| metric | value |", "|---|---|"]
    results += [f"| {m.name} | {m.value:.4g}{(' ' + m.unit) if m.unit else ''} |" for m in metrics]
    sections = [
        f"# {name}\n\n{summary.strip()}",
        f"## Usage\n\n```python\n{usage.strip()}\n```",
        "## Results\n\n" + "\n".join(results) + f"\n\nReproduce these numbers with:\n\n```bash\n{command.strip()}\n```",
        f"## Training\n\n{training.strip()}",
        f"## Limitations\n\n{limitations.strip()}",
    ]
    if config:
        sections.append("## Configuration\n\n" + _config_table(config))
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
    with atomic_file(Path(folder) / "README.md") as tmp:
        tmp.write_text(str(card))
    return card
