"""Fine-tune the diffusion world model for action control: see `finetune_cosmos.py`.

    accelerate launch training/finetune_action.py --base cosmos-dit-physics-64 --data data/push-train
"""

import sys

from finetune_cosmos import main

if __name__ == "__main__":
    sys.exit(main("action"))
