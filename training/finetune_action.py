"""Fine-tune a world model (diffusion or autoregressive) for action control: see `finetune_cosmos.py`.

    accelerate launch training/finetune_action.py --base cosmos-dit-physics-64 --data data/push-train
    accelerate launch training/finetune_action.py --config training/configs/cosmos_ar_action.yaml
"""

import sys

from finetune_cosmos import main

if __name__ == "__main__":
    sys.exit(main("action"))
