"""What makes in-context rule learning come sooner on a CPU? Same budget, one change at a time.

    python benchmarks/icl_study.py --only 1d,2d,2d-mirror --budget-min 8   # positions first
    python benchmarks/icl_study.py                       # every configuration x 5 minutes, 1 thread
    python benchmarks/icl_study.py --budget-min 2 --only base,lr3e-3

Every configuration trains a backbone from scratch on the same simple generated families
(colour permutation and swap, flips, rotations, transpose) for the same wall-clock budget,
with the risk term only (the consistency and inverse terms add sequences, and so cost steps),
then reports: steps done; the mean training loss over the steps all configurations reached
(equal steps) and over the last tenth of its own budget; and in-context exact accuracy (greedy,
no test-time training) on fresh tasks of those families with grids up to --eval-side.

Configurations: `1d`, `2d`, `2d-mirror`, `2d-paired`, `2d-match` (the grid positions of
positions.py: none, role + row/column + next cell, the mirrored row/column too, the paired
input's colours too, and whether each output cell has them too; everything else as `base`),
`base`
(tiny, lr 1e-3, grids up to --side, the default positions), `lr3e-3`, `small-grids` (a
curriculum: grids up to 4x4 for the first half of the budget, then up to --side), `wide`
(tiny-wide: 2 layers x 160) and `deep` (tiny-deep: 8 layers x 96), all about 0.6M weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from arc_efe.data.dataset import make_queries
from arc_efe.data.synthetic import SyntheticSource
from arc_efe.data.tasks import grids_equal
from arc_efe.data.views import View
from arc_efe.model.policy import decode_queries
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import setup

from common import RISK_ALONE, train_for

FAMILIES = "calibration"  # the seven simple families (data/synthetic GROUPS)
CONFIGS = {
    "1d": dict(positions="1d"),
    "2d": dict(positions="2d"),
    "2d-mirror": dict(positions="2d-mirror"),
    "2d-paired": dict(positions="2d-paired"),
    "2d-match": dict(positions="2d-match"),
    "base": dict(),
    "lr3e-3": dict(lr=3e-3),
    "small-grids": dict(curriculum=4),
    "wide": dict(model_name="tiny-wide"),
    "deep": dict(model_name="tiny-deep"),
}


def run_config(name: str, spec: dict, args, tmp: str) -> dict:
    torch.manual_seed(args.seed)
    source = f"synthetic/{FAMILIES}:{args.side}"
    cfg = TrainConfig(data=source, output_dir=tmp, run_name=name, device="cpu",
                      model_name=spec.get("model_name", "tiny"), agent_lr=spec.get("lr", args.lr),
                      positions=spec.get("positions", TrainConfig.positions),
                      batch_size=args.batch_size, max_batches=10 ** 9, max_len=args.max_len, warmup_steps=20,
                      memory=False, tensorboard=False, seed=args.seed, epochs=1,
                      weights=dict(RISK_ALONE))
    run = setup(cfg)
    budget = args.budget_min * 60
    if "curriculum" in spec:
        run.data.synthetic = [SyntheticSource(f"synthetic/{FAMILIES}:{spec['curriculum']}", args.seed)]
        losses = train_for(run, budget / 2)["losses"]
        run.data.synthetic = [SyntheticSource(source, args.seed + 1)]
        losses += train_for(run, budget / 2)["losses"]
    else:
        losses = train_for(run, budget)["losses"]
    fresh = SyntheticSource(f"synthetic/{FAMILIES}:{args.eval_side}", args.seed + 7_777_777).tasks(args.eval_tasks)
    queries = [q for t in fresh for q in make_queries([t], "test")]
    answers = decode_queries(run.policy, queries, View(), args.max_len, max_side=args.eval_side,
                             shape_rule=not args.no_shape_rule)
    right = sum(grids_equal(a, q.target.output) for a, q in zip(answers, queries))
    return {"steps": len(losses), "losses": losses, "right": right, "total": len(queries)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, default=5.0, help="minutes of training per configuration")
    p.add_argument("--only", default=",".join(CONFIGS), help="comma-separated configurations to run")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--side", type=int, default=8, help="largest grid side in training")
    p.add_argument("--eval-side", type=int, default=6, help="largest grid side of the evaluation tasks")
    p.add_argument("--eval-tasks", type=int, default=100)
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-shape-rule", action="store_true", help="decode answers of any size (see evaluate)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t0 = time.time()
            results[name] = run_config(name, CONFIGS[name], args, tmp)
            r = results[name]
            print(f"{name}: {r['steps']} steps in {time.time() - t0:.0f}s, in-context {r['right']}/{r['total']}",
                  flush=True)
    equal = min(r["steps"] for r in results.values())
    print(f"\n{'config':<12} {'steps':>6} {f'loss@{equal}':>10} {'loss last 10%':>14} {'in-context':>11}")
    for name, r in results.items():
        at_equal = float(np.mean(r["losses"][max(0, equal - max(equal // 10, 1)):equal]))
        tail = float(np.mean(r["losses"][-max(r["steps"] // 10, 1):]))
        print(f"{name:<12} {r['steps']:>6} {at_equal:>10.3f} {tail:>14.3f} {r['right']:>5}/{r['total']:<5}")
    print(f"(loss@{equal}: mean over the 10% of steps before step {equal}, reached by every configuration)")


if __name__ == "__main__":
    main()
