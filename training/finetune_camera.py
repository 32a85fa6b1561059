"""Fine-tune a world model (diffusion or autoregressive) for camera control: see `finetune_cosmos.py`.

    accelerate launch training/finetune_camera.py --base cosmos-dit-physics-64 --data data/camera-train
"""

import sys

from finetune_cosmos import main

if __name__ == "__main__":
    sys.exit(main("camera"))
