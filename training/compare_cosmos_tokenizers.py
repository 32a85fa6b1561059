"""A TokenBench-style table of Cosmos tokenizers: PSNR, SSIM and temporal-difference PSNR on held-out
physics clips, PSNR on out-of-distribution platformer clips, and PSNR on the whole held-out clips (33 frames, as
the world models encode them; the 8x tokenizers' cards score those already), one row per tokenizer.

    python training/compare_cosmos_tokenizers.py --data data/physics-eval \
        outputs/cosmos/tokenizer-cv4x8x8-stage2/model outputs/cosmos/tokenizer-cv8x8x8-stage2/model ...

Each folder is evaluated with `wm_hub.models.cosmos.evaluation_cosmos.evaluate`, the numbers `wm-hub eval`
puts on a card. `--out FILE` also writes the table as markdown (through a temporary file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wm_hub.cards import emit_markdown
from wm_hub.models.cosmos.autoencoder_cosmos import CausalVideoTokenizer
from wm_hub.models.cosmos.evaluation_cosmos import compression_name, evaluate, longest_clip_len, whole_clip_metric

WHOLE = "PSNR, whole clips"  # the longest clips the held-out episodes hold (33 frames)
COLUMNS = ("PSNR", "SSIM", "temporal-difference PSNR", "PSNR, out of distribution (platformer)", WHOLE)


def table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    """Markdown table from (folder name, compression name, metrics by name) rows."""
    lines = ["| tokenizer | variant | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for name, kind, metrics in rows:
        lines.append(f"| {name} | {kind} | " + " | ".join(f"{metrics[c]:.3f}" if c == "SSIM" else f"{metrics[c]:.2f}"
                                                      for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="tokenizer folders or shipped names")
    parser.add_argument("--data", required=True, help="held-out physics dataset folder")
    parser.add_argument("--count", type=int, default=64, help="clips per tokenizer")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    rows = []
    for folder in args.folders:
        model = CausalVideoTokenizer.from_pretrained(folder)
        metrics = {m.name: m.value for m in evaluate(model, args.data, count=args.count)}
        # the longest clips' own row where the card's clips are shorter, else the card's PSNR
        metrics[WHOLE] = metrics.get(whole_clip_metric(longest_clip_len(model, args.data)), metrics["PSNR"])
        rows.append((Path(folder).name if Path(folder).name != "model" else Path(folder).parent.name,
                     compression_name(model), metrics))
    emit_markdown(table(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
