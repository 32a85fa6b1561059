"""Copy a trained model folder with float16 weights (half the size), e.g. to commit it.

    python training/export_fp16.py outputs/genie/tokenizer/model training/checkpoints/genie-platformer-64/tokenizer
"""

from __future__ import annotations

import argparse
import shutil
import sys

import torch

import wm_hub


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a model folder written by save_pretrained")
    parser.add_argument("target", help="the folder to write")
    args = parser.parse_args(argv)
    model = wm_hub.load(args.source)
    model.to(torch.float16).save_pretrained(args.target)
    card = f"{args.source}/README.md"
    if shutil.os.path.isfile(card):
        shutil.copyfile(card, f"{args.target}/README.md")
    print(f"wrote {args.target} (float16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
