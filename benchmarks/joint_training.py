"""Three ways to spend the same CPU time on the tasks being answered, compared on the same tasks.

    python benchmarks/joint_training.py --design a                       # per task (evaluate's defaults)
    python benchmarks/joint_training.py --design b                       # joint, demonstrations in context
    python benchmarks/joint_training.py --design c                       # joint, single pairs + task vectors
    python benchmarks/joint_training.py --design b --data arc-agi-1/evaluation --tasks 40 --sample-seed 0

Run two designs side by side (one thread each on a 2-core machine) for a fair comparison.
Every design gets `--seconds-per-task` x tasks seconds of training in all:

- (a) per-task test-time training, as `arc-efe evaluate` does by default: each task trains
  on its own demonstrations from the loaded weights for `--seconds-per-task`, then answers;
- (b) joint training with demonstrations in context (`evaluate --joint-seconds`): one run
  trains on leave-one-out queries of all the tasks' demonstrations under views, then each task
  answers with its demonstrations in context and no training of its own;
- (c) joint training of single pairs with a learned vector per task and view
  (`inference/task_vectors.py`, the mdlARC design): each sequence is one demonstration pair,
  and each task answers its test inputs under 8 views with those views' vectors, no
  demonstration in the prompt.

Answering is the same for all three (8 views, depth-first decoding, product of experts with
votes, the size rule); (a) and (b) run the real `arc-efe evaluate`. Tasks: `--data` (default
the development split arc-agi-1/dev), `--tasks` drawn at random with `--sample-seed`. Prints
the tasks solved, the official score and the seconds of training and answering.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from arc_efe.cli import main as cli
from arc_efe.data.scoring import make_entry, score_submission
from arc_efe.data.tasks import grids_equal
from arc_efe.inference.evaluate import load_policy
from arc_efe.inference.pipeline import InferenceConfig, solve_task
from arc_efe.inference.task_vectors import TaskVectors, fit_pairs
from arc_efe.saved.modelfolder import shipped_model

from full_eval import chosen_tasks


def run_evaluate(tasks, args, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tasks.json"
        data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
        command = ["evaluate", "--data", str(data), "--device", "cpu", "--output-dir", f"{tmp}/ev", "--no-progress",
                   "--seed", str(args.seed), *(["--checkpoint", args.checkpoint] if args.checkpoint else []), *extra]
        print("arc-efe " + " ".join(command[:1] + command[3:]), flush=True)
        t0 = time.time()
        if cli(command) != 0:
            raise SystemExit("evaluate failed")
        records = [json.loads(x) for x in (Path(tmp) / "ev" / "eval.jsonl").read_text().splitlines()]
    return {"submission": {r["task_id"]: r["attempts"] for r in records}, "seconds": time.time() - t0}


def run_vectors(tasks, args) -> dict:
    policy, *_ = load_policy(Path(args.checkpoint) if args.checkpoint else shipped_model(), "tiny", torch.device("cpu"))
    hidden = policy.backbone.get_input_embeddings().embedding_dim
    vectors = TaskVectors(tasks, views=8, hidden=hidden, seed=args.seed)
    t0 = time.time()
    stats = fit_pairs(policy, vectors, steps=10 ** 7, seconds=args.seconds_per_task * len(tasks), seed=args.seed)
    print(f"single pairs with task vectors: {stats.steps} steps in {stats.seconds:.0f} s, loss "
          f"{stats.first_loss:.3f} -> {stats.last_loss:.3f}", flush=True)
    cfg = InferenceConfig(views=8, in_context=False, seed=args.seed)
    submission = {}
    for task in tasks:
        result = solve_task(policy, task, cfg, memory_fn=vectors.memory_fn(task))
        submission[task.id] = [make_entry(o.attempts) for o in result.outputs]
        right = [any(grids_equal(a, p.output) for a in o.attempts) for o, p in zip(result.outputs, task.test)]
        print(f"{task.id} {'right' if all(right) else 'wrong'} {result.seconds:.1f} s", flush=True)
    return {"submission": submission, "seconds": time.time() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", choices=("a", "b", "c"), required=True)
    p.add_argument("--data", default="arc-agi-1/dev")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--seconds-per-task", type=float, default=20.0)
    p.add_argument("--checkpoint", default=None, help="the model to start from (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tasks = chosen_tasks(args.data, args.tasks, args.sample_seed)
    budget = args.seconds_per_task * len(tasks)
    if args.design == "a":
        out = run_evaluate(tasks, args, ["--ttt-seconds", str(args.seconds_per_task)])
    elif args.design == "b":
        out = run_evaluate(tasks, args, ["--joint-seconds", str(budget), "--ttt-steps", "0"])
    else:
        out = run_vectors(tasks, args)
    report = score_submission(out["submission"], tasks)
    solved = [t.task_id for t in report.tasks if all(t.right)]
    print(f"design {args.design}: solved {len(solved)}/{len(tasks)} of {args.data} (sample seed {args.sample_seed}); "
          f"official score {100 * report.score:.2f}%; {budget:.0f} s of training budget, {out['seconds']:.0f} s in "
          f"all; solved: {', '.join(solved) or 'none'}")


if __name__ == "__main__":
    main()
