"""Pretraining on generated tasks: does the model learn to infer rules in context?

    python benchmarks/pretrain_cpu.py                      # 20 minutes on 2 CPU cores
    python benchmarks/pretrain_cpu.py --budget-min 3       # quicker look
    python benchmarks/pretrain_cpu.py --device cuda --model-name small --budget-min 5

Trains a backbone from scratch on `synthetic` (every family, fresh tasks each step) for a
fixed wall-clock budget, then reports in-context exact accuracy (greedy, no test-time
training) on fresh generated tasks from a seed training never saw, per family and overall,
and the tasks solved (pass@2) among the 30 smallest `arc-agi-1/evaluation` tasks, without and
with test-time training (`--ttt-seconds` per task), each from the task as it is (1 view) and by
voting over 8 views. `--output-dir DIR` keeps the pretrained run as a checkpoint, for
`arc-efe evaluate --checkpoint` and `benchmarks/ttt_scratch.py --checkpoint`.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import defaultdict

import torch

from arc_efe.data.dataset import make_queries
from arc_efe.data.synthetic import SyntheticSource
from arc_efe.data.tasks import grids_equal
from arc_efe.data.views import View
from arc_efe.inference.pipeline import InferenceConfig
from arc_efe.inference.ttt import TTTConfig
from arc_efe.model.policy import decode_queries
from arc_efe.saved.checkpoint import Position, save_checkpoint
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import setup

from common import smallest_tasks, train_for, ttt_and_vote


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, default=20.0, help="minutes of pretraining")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model-name", default="tiny")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--eval-tasks", type=int, default=200, help="fresh generated tasks to evaluate on")
    p.add_argument("--arc-tasks", type=int, default=30, help="smallest arc-agi-1/evaluation tasks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ttt-seconds", type=float, default=20.0,
                   help="test-time training per ARC task; 0 skips the measurement with it")
    p.add_argument("--ttt-lr", type=float, default=1e-3)
    p.add_argument("--output-dir", default=None, help="keep the pretrained run (a checkpoint) in this folder")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    keep = contextlib.nullcontext(args.output_dir) if args.output_dir else tempfile.TemporaryDirectory()
    with keep as tmp:
        cfg = TrainConfig(data="synthetic", output_dir=tmp, run_name="pretrain", device=args.device,
                          model_name=args.model_name, agent_lr=args.lr, batch_size=args.batch_size,
                          max_batches=10 ** 9, max_len=args.max_len, warmup_steps=50, memory=False,
                          tensorboard=False, seed=args.seed, epochs=1)
        run = setup(cfg)
        t0 = time.time()
        res = train_for(run, args.budget_min * 60)
        print(f"pretrained {res['steps']} steps of {args.batch_size} queries in {time.time() - t0:.0f}s")
        print("loss per tenth of the budget: " + " ".join(f"{v:.3f}" for v in res["curve"]))

        fresh = SyntheticSource("synthetic", args.seed + 7_777_777).tasks(args.eval_tasks)
        queries = [q for t in fresh for q in make_queries([t], "test")]
        answers = decode_queries(run.policy, queries, View(), args.max_len)
        per_family: dict[str, list[bool]] = defaultdict(list)
        for q, a in zip(queries, answers):
            per_family[q.task.source.split("/", 1)[1]].append(grids_equal(a, q.target.output))
        print(f"\nin-context exact accuracy on {len(fresh)} fresh generated tasks ({len(queries)} test outputs):")
        for fam in sorted(per_family):
            ok = per_family[fam]
            print(f"  {fam:<28} {sum(ok)}/{len(ok)}")
        total = [x for ok in per_family.values() for x in ok]
        print(f"  {'overall':<28} {sum(total)}/{len(total)} ({100 * sum(total) / max(len(total), 1):.1f}%)")

        if args.output_dir:
            path = save_checkpoint(run.run_dir, run.policy.backbone, run.optimizer, run.scheduler,
                                   Position(res["steps"], 0, res["steps"], 1), cfg.to_dict())
            print(f"pretrained checkpoint: {path}")

        arc = smallest_tasks(args.arc_tasks, "arc-agi-1/evaluation")
        inf = InferenceConfig(views=8, max_len=args.max_len, seed=args.seed)
        measured = [("no test-time training", None)]
        if args.ttt_seconds > 0:
            measured.append((f"test-time training {args.ttt_seconds:.0f} s per task",
                             TTTConfig(steps=10 ** 6, lr=args.ttt_lr, seconds=args.ttt_seconds,
                                       max_len=args.max_len, seed=args.seed)))
        print(f"\narc-agi-1/evaluation, the {len(arc)} smallest tasks, tasks solved (pass@2):")
        for name, ttt in measured:
            r = ttt_and_vote(run.policy, arc, ttt, inf, log=lambda line: None)
            solved = ", ".join(f"{k} {v}/{r['tasks']}" for k, v in r["solved"].items())
            print(f"  {name}: {solved} ({r['seconds_per_task']:.1f} s per task)", flush=True)

if __name__ == "__main__":
    main()
