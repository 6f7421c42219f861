"""Data-parallel scaling: training tokens/s with 1 rank and with N ranks (torchrun, gloo on CPU).

    python benchmarks/scaling.py                      # 1 vs 2 ranks, 12 global micro-batches
    python benchmarks/scaling.py --ranks 4 --device cuda

Each run trains the same configuration for the same micro-batches (`--max-batches`); with N
ranks a step covers N micro-batches, so the single-rank run uses `--grad-accum-steps N` to keep
the same global batch. Every rank gets `--threads` threads (OMP_NUM_THREADS). Printed: mean
tokens/s over the steps (the first step is a warm-up and left out) and the ratio N / 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tokens_per_s(ranks: int, args, out: Path) -> float:
    run = f"ranks{ranks}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "arc_efe", "train",
           "--device", args.device, "--epochs", "1", "--max-batches", str(args.max_batches),
           "--batch-size", str(args.batch_size), "--grad-accum-steps", str(args.ranks // ranks),
           "--max-len", str(args.max_len), "--train-eval-queries", "1", "--max-val-tasks", "1",
           "--no-tensorboard", "--no-memory", "--output-dir", str(out), "--run-name", run]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{ranks} rank(s) failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    steps = [json.loads(line) for line in (out / run / "metrics.jsonl").read_text().splitlines()]
    rates = [s["tokens_per_s"] for s in steps if s["kind"] == "step"][1:]
    return sum(rates) / len(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-batches", type=int, default=12, help="global micro-batches; a multiple of --ranks")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1, help="threads per rank")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="scaling_"))
    one = tokens_per_s(1, args, out)
    many = tokens_per_s(args.ranks, args, out)
    print(f"1 rank: {one:.0f} tokens/s; {args.ranks} ranks: {many:.0f} tokens/s; "
          f"ratio {many / one:.2f} (ideal {args.ranks})")


if __name__ == "__main__":
    main()
