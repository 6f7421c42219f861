"""The users' training command, kept: a thin wrapper over `arc-efe train`.

    python trainloop_gpu_finetuned.py --epochs 5 --no-freeze-qwen --agent-lr 1e-4 --device cpu
"""

import sys

from arc_efe.train import main

if __name__ == "__main__":
    sys.exit(main(prog="trainloop_gpu_finetuned.py"))
