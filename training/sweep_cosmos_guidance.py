"""Text2World caption accuracy against the classifier-free guidance scale, one row per scale.

    python training/sweep_cosmos_guidance.py cosmos-dit-physics-64 --data data/physics-eval --scales 1 3 5 7

Every scale generates from the same held-out captions and the same seeds, scored by the probe `wm-hub eval`
uses for the card (`wm_hub.models.cosmos.evaluation_cosmos.text2world_scores`): the share of caption facts
seen, and of its two kinds (named objects present, motion verbs shown); the real clips' score is the probe's
ceiling, their reconstructions' by the model's tokenizer the model's. `--out FILE` also writes the table as
markdown (through a temporary file).
"""

from __future__ import annotations

import argparse
import sys

from wm_hub import load
from wm_hub.cards import emit_markdown
from wm_hub.models.cosmos.evaluation_cosmos import text2world_scores


def table(scores: dict[str, float], scales: list[float]) -> str:
    """Markdown table of `text2world_scores` output: one row per guidance scale, then the real clips and their
    reconstructions by the model's tokenizer."""
    lines = ["| guidance scale | caption accuracy | named objects present | motion verbs shown |", "|---|---|---|---|"]
    ceilings = [("real clips (ceiling)", "real"), ("tokenizer reconstructions (the model's ceiling)", "reconstructed")]
    for label, name in [(f"{s:g}", f"guidance {s:g}") for s in scales] + ceilings:
        lines.append(f"| {label} | {scores[name]:.3f} | {scores[f'{name} object']:.3f} | "
                     f"{scores[f'{name} motion']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a diffusion world model folder or shipped name")
    parser.add_argument("--data", required=True, help="held-out physics dataset folder")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 5.0, 7.0])
    parser.add_argument("--count", type=int, default=64, help="held-out captions")
    parser.add_argument("--steps", type=int, default=30, help="sampling steps")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if any(s < 1 for s in args.scales):
        parser.error(f"guidance scales are >= 1 (1 is no guidance), got {args.scales}")
    scores = text2world_scores(load(args.model), args.data, args.count, args.steps, tuple(args.scales))
    emit_markdown(table(scores, args.scales), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
