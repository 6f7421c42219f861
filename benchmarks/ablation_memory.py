"""Does Solver2's memory help? The same CPU budget with memory off and memory on.

    python benchmarks/ablation_memory.py                  # 5 minutes per configuration
    python benchmarks/ablation_memory.py --budget-min 1   # quicker look

Each configuration trains the tiny backbone from scratch on the N smallest
`arc-agi-1/training` tasks (by token count), with a quarter of them held out by task, for the
same wall-clock budget, with the success rule called after every step as in training. It
prints training accuracy (exact greedy answers on the training tasks' queries), validation
accuracy (pass@2 on the held-out tasks' test outputs), the memory size and the adds / queries.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from arc_efe.saved.config import TrainConfig
from arc_efe.training.evaluation import exact_accuracy, pass_at_2
from arc_efe.training.run import setup

from common import smallest_tasks_file, train_for

CONFIGS = {
    "memory off": {"memory": False},
    "memory on": {"memory": True},
}


def run_one(data: Path, out: Path, name: str, args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = TrainConfig(data=str(data), output_dir=str(out), run_name=name.replace(" ", "_").replace("=", ""),
                      device="cpu", agent_lr=args.lr, batch_size=args.batch_size, val_fraction=0.25,
                      max_val_tasks=100, augment=not args.no_augment, warmup_steps=20, max_len=1024,
                      tensorboard=False, seed=args.seed, epochs=1, **CONFIGS[name])
    run = setup(cfg)
    res = train_for(run, args.budget_min * 60, [run.writer] if run.writer else [])
    right, total = exact_accuracy(run.policy, run.queries, cfg.max_len)
    val = pass_at_2(run.policy, run.val_queries, cfg.max_len) if run.val_queries else None
    return {"name": name, **res, "right": right, "total": total,
            "val": val.score if val else float("nan"), "val_tasks": len(val.tasks) if val else 0,
            "size": len(run.bank) if run.bank is not None else 0,
            "adds": run.writer.adds if run.writer else 0, "queries": run.writer.queries if run.writer else 0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, default=5.0, help="minutes of training per configuration")
    p.add_argument("--tasks", type=int, default=24, help="how many of the smallest training tasks")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-augment", action="store_true", help="train without random views")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = smallest_tasks_file(args.tasks, Path(tmp))
        print(f"{args.tasks} smallest arc-agi-1/training tasks (a quarter held out), {args.budget_min:g} min "
              f"per configuration, lr {args.lr:g}, batch {args.batch_size}, augment {not args.no_augment}")
        results = [run_one(data, Path(tmp), name, args) for name in CONFIGS]
    print()
    print(f"{'configuration':<22} {'steps':>5}  {'train accuracy':>16}  {'val pass@2':>10}  "
          f"{'memory size':>11}  {'adds/queries':>12}")
    for r in results:
        train_acc = f"{r['right']}/{r['total']} ({100 * r['right'] / max(r['total'], 1):.1f}%)"
        print(f"{r['name']:<22} {r['steps']:>5}  {train_acc:>16}  {100 * r['val']:>9.1f}%  "
              f"{r['size']:>11}  {r['adds']:>5}/{r['queries']:<6}")


if __name__ == "__main__":
    main()
