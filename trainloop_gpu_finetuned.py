"""The users' training command, kept: a thin wrapper over `arc-efe train`.

    python trainloop_gpu_finetuned.py --epochs 5 --no-freeze-qwen --agent-lr 1e-4 --device cpu
"""

import sys

from arc_efe.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(prog="trainloop_gpu_finetuned.py"))
