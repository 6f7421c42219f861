"""A whole evaluation set answered by `arc-efe evaluate`, in shards side by side: the figure users look for.

    python benchmarks/full_eval.py                                   # all 400 ARC-AGI-1 evaluation tasks
    python benchmarks/full_eval.py --data arc-agi-2/evaluation       # all 120 of ARC-AGI-2
    python benchmarks/full_eval.py --data arc-agi-1/dev              # the development split (every choice)
    python benchmarks/full_eval.py --tasks 40 --sample-seed 0        # 40 evaluation tasks drawn at random
    python benchmarks/full_eval.py --summary-only --output-dir DIR   # the figures of a finished (or running) run
    python benchmarks/full_eval.py -- --checkpoint runs/RUN --max-context 4096   # evaluate's flags after --

Each of `--shards` processes (one thread each by default, so two shards fill a 2-core machine)
runs the real `arc-efe evaluate --shard i/n --resume` into OUTPUT_DIR/shard_i, logging to
OUTPUT_DIR/shard_i.log. Stopped for any reason, the same command goes on where each shard
stopped (evaluate's --resume; the settings must be the same). Then it prints:

- tasks solved (official pass@2: every test output right) and the official score;
- wall time of the shards (the sum of each shard's task seconds; the longest shard is the
  wall clock of a run on as many cores as shards);
- tasks without a candidate from the model (and why), tasks with demonstrations dropped;
- solved by quartile of task size (cells of every demonstration grid and test input, the
  tasks sorted by it and cut into four groups of equal count).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from arc_efe.data.files import read_jsonl
from arc_efe.data.scoring import score_submission, write_submission
from arc_efe.data.sources import load_tasks
from arc_efe.data.tasks import Task
from arc_efe.inference.evaluate import summary_lines

from common import split_passthrough


def task_cells(task: Task) -> int:
    """Size of a task: cells of its demonstrations (input and output) and its test inputs."""
    return sum(p.input.size + p.output.size for p in task.train) + sum(p.input.size for p in task.test)


def chosen_tasks(data: str, n: int | None, seed: int) -> list[Task]:
    tasks = load_tasks(data).tasks
    if n is None or n >= len(tasks):
        return tasks
    pick = np.random.default_rng(seed).choice(len(tasks), size=n, replace=False)
    return [tasks[i] for i in sorted(pick)]


def run_shards(args: argparse.Namespace, tasks: list[Task], passed: list[str]) -> None:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    procs = []
    for i in range(1, args.shards + 1):
        command = [sys.executable, "-m", "arc_efe", "evaluate", "--data", args.data, "--shard", f"{i}/{args.shards}",
                   "--output-dir", str(out / f"shard_{i}"), "--no-progress", "--resume", "--device", args.device,
                   *passed]
        if args.tasks is not None:
            command[6:6] = ["--task-ids", *[t.id for t in tasks]]
        log = open(out / f"shard_{i}.log", "a")
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        procs.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    print(f"{args.shards} shards of {len(tasks)} tasks of {args.data} running (logs: {out}/shard_*.log)", flush=True)
    failed = []
    for i, (proc, log) in enumerate(procs, 1):
        if proc.wait() != 0:
            failed.append(i)
        log.close()
    if failed:
        raise SystemExit(f"shard(s) {', '.join(map(str, failed))} failed: see {out}/shard_N.log; "
                         "run the same command again to go on where they stopped")


def shard_records(out: Path) -> list[list[dict]]:
    """Per shard, its task records: the finished eval.jsonl, else what is answered so far."""
    shards = []
    for folder in sorted(out.glob("shard_*"), key=lambda p: int(p.name.split("_")[1]) if p.is_dir() else 0):
        if not folder.is_dir():
            continue
        for name in ("eval.jsonl", "eval.partial.jsonl"):
            if (folder / name).is_file():
                shards.append(read_jsonl(folder / name, ""))
                break
    return shards


def summary(tasks: list[Task], shards: list[list[dict]], out: Path) -> list[str]:
    records = [r for recs in shards for r in recs]
    by_id = {t.id: t for t in tasks}
    records = [r for r in records if r["task_id"] in by_id]
    answered = [by_id[r["task_id"]] for r in records]
    lines = [f"answered {len(records)} of {len(tasks)} tasks"]
    submission = {r["task_id"]: r["attempts"] for r in records}
    if records:
        write_submission(out / "submission.json", submission)
        lines.append(f"merged submission: {out / 'submission.json'}")
    if answered and all(t.has_answers for t in answered):
        result = score_submission(submission, tasks)  # tasks not yet answered count as wrong
        solved = [r["task_id"] for r in records if all(r["correct"])]
        right = sum(sum(r["correct"]) for r in records)
        outputs = sum(len(t.test) for t in tasks)
        lines.append(f"solved {len(solved)}/{len(tasks)} tasks; official score {100 * result.score:.2f}% "
                     f"({right} of {outputs} test outputs)")
        order = sorted(tasks, key=lambda t: (task_cells(t), t.id))
        quarter = {t.id: min(4, 1 + 4 * k // len(order)) for k, t in enumerate(order)}
        counts = {q: [0, 0, 0] for q in range(1, 5)}  # solved, answered, no candidate
        for r in records:
            q = quarter[r["task_id"]]
            counts[q][0] += all(r["correct"])
            counts[q][1] += 1
            counts[q][2] += any(r.get("fallback") or [])
        lines.append("by size quartile (cells of demonstrations and test inputs): "
                     + ", ".join(f"Q{q} {c[0]}/{c[1]}" for q, c in counts.items()))
        lines.append("  no candidate by quartile: " + ", ".join(f"Q{q} {c[2]}" for q, c in counts.items()))
        cells = {q: [task_cells(t) for t in order if quarter[t.id] == q] for q in range(1, 5)}
        lines.append("  size range of each quartile: " + ", ".join(
            f"Q{q} {min(c)}-{max(c)} cells" for q, c in cells.items() if c))
    seconds = [sum(r["seconds"] for r in recs) for recs in shards]
    if records:
        lines.append(f"time: {sum(seconds):.0f} s of task time ({sum(seconds) / len(records):.1f} s per task); "
                     f"longest shard {max(seconds):.0f} s ({max(seconds) / 3600:.2f} h wall clock with "
                     f"{len(shards)} shards side by side)")
        lines += summary_lines(records)
    return lines


def main() -> None:
    argv, passed = split_passthrough(sys.argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="arc-agi-1/evaluation")
    p.add_argument("--tasks", type=int, default=None, help="answer this many tasks drawn at random (all by default)")
    p.add_argument("--sample-seed", type=int, default=0, help="the seed of that draw")
    p.add_argument("--shards", type=int, default=2, help="processes side by side")
    p.add_argument("--threads", type=int, default=1, help="threads per shard")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output-dir", default=None, help="default: full_eval/<data with / as _>")
    p.add_argument("--summary-only", action="store_true", help="print the figures of what is in --output-dir")
    args = p.parse_args(argv)
    args.output_dir = args.output_dir or f"full_eval/{args.data.replace('/', '_')}"
    tasks = chosen_tasks(args.data, args.tasks, args.sample_seed)
    t0 = time.time()
    if not args.summary_only:
        run_shards(args, tasks, passed)
        print(f"this invocation: {time.time() - t0:.0f} s", flush=True)
    for line in summary(tasks, shard_records(Path(args.output_dir)), Path(args.output_dir)):
        print(line)
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
