"""`arc-efe evaluate` with its defaults on the smallest tasks of a source: solved and seconds.

    python benchmarks/evaluate_smallest.py                                  # shipped model, 30 smallest ARC-AGI-1 eval
    python benchmarks/evaluate_smallest.py --data arc-agi-2/evaluation
    python benchmarks/evaluate_smallest.py --tasks 400 -- --checkpoint runs/RUN --ttt-seconds 10

The `--tasks` smallest tasks of `--data` (by token count, every test output with its
demonstrations) are written to a task file and answered by the real `arc-efe evaluate`, so
what is measured is what a user gets. Arguments after `--` go to evaluate unchanged (the
default model is the shipped models/arc-efe-tiny, as for evaluate itself). Prints evaluate's
table, then the tasks solved (official pass@2, every test output right) and seconds per task.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from arc_efe.cli import main as cli

from common import smallest_tasks_file, split_passthrough


def main() -> None:
    argv, passed = split_passthrough(sys.argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="arc-agi-1/evaluation")
    p.add_argument("--tasks", type=int, default=30, help="the smallest tasks of --data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = smallest_tasks_file(args.tasks, Path(tmp), args.data)
        command = ["evaluate", "--data", str(data), "--device", args.device, "--output-dir", f"{tmp}/eval",
                   "--no-progress", *passed]
        print(f"the {args.tasks} smallest tasks of {args.data}: arc-efe {' '.join(command[:1] + command[5:])}",
              flush=True)
        if cli(command) != 0:
            raise SystemExit("evaluate failed")
        records = [json.loads(line) for line in (Path(tmp) / "eval" / "eval.jsonl").read_text().splitlines()]
    solved = [r["task_id"] for r in records if all(r["correct"])]
    seconds = sum(r["seconds"] for r in records) / max(len(records), 1)
    print(f"\nsolved {len(solved)}/{len(records)} tasks of {args.data} ({', '.join(solved) or 'none'}); "
          f"{seconds:.1f} s per task")


if __name__ == "__main__":
    main()
