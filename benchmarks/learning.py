"""Does training learn? A fixed CPU budget on small ARC tasks, trainable vs frozen backbone.

    python benchmarks/learning.py                  # 10 minutes per configuration
    python benchmarks/learning.py --budget-min 2   # quicker look
    python benchmarks/learning.py --modes full --positions 1d,2d --threads 1   # grid positions or not
    python benchmarks/learning.py --modes full --init models/arc-efe-tiny   # from the shipped model
    python benchmarks/learning.py --modes full --weights risk,default   # the risk term alone or all terms

For each configuration (backbone trainable, then `--freeze-qwen`; each grid-positions setting; each
set of loss weights: the pretraining recipe's risk term alone, or training's defaults) it trains the tiny
backbone, from scratch or from `--init` (a model folder, run or checkpoint: its positions
then replace --positions), on the N smallest `arc-agi-1/training` tasks (by token count) for
the same wall-clock budget, prints the loss curve (mean loss per tenth of the budget) and
the exact-answer training accuracy on those tasks' leave-one-out queries at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from arc_efe.model.positions import DEFAULT_POSITIONS
from arc_efe.loss import DEFAULT_WEIGHTS
from arc_efe.saved.config import TrainConfig
from arc_efe.saved.modelfolder import model_source
from arc_efe.training.evaluation import exact_accuracy
from arc_efe.training.run import setup

from common import RISK_ALONE, smallest_tasks_file, train_for


RECIPE = "risk"  # the pretraining recipe's weights: the risk term alone (Makefile, `make pretrain`)
WEIGHT_SETS = {RECIPE: RISK_ALONE, "default": DEFAULT_WEIGHTS}


def run_one(data: Path, out: Path, mode: str, positions: str, weight_set: str, args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = TrainConfig(data=str(data), output_dir=str(out), run_name=f"{mode}-{positions}-{weight_set}",
                      mode=mode, positions=positions, device="cpu",
                      agent_lr=args.lr, batch_size=args.batch_size, val_fraction=0.0,
                      augment=not args.no_augment, warmup_steps=20, max_len=1024,
                      tensorboard=False, seed=args.seed, epochs=1, memory=False, init=args.init,
                      weights=dict(WEIGHT_SETS[weight_set]))
    run = setup(cfg)
    res = train_for(run, args.budget_min * 60)
    right, total = exact_accuracy(run.policy, run.queries, cfg.max_len, shape_rule=not args.no_shape_rule)
    return {"config": f"{mode}/{positions}/{weight_set}", **res, "right": right, "total": total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, default=10.0, help="minutes of training per configuration")
    p.add_argument("--tasks", type=int, default=20, help="how many of the smallest training tasks")
    p.add_argument("--lr", type=float, default=3e-3, help="3e-3 fitted these tasks faster than 1e-3 (README)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--no-shape-rule", action="store_true", help="decode answers of any size (see evaluate)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="full,frozen")
    p.add_argument("--positions", default=DEFAULT_POSITIONS,
                   help="comma-separated grid positions to compare, e.g. 1d,2d")
    p.add_argument("--weights", default=RECIPE,
                   help=f"comma-separated loss weights to compare: {RECIPE} (the pretraining recipe's, the risk "
                        f"term alone) and/or default (training's: {DEFAULT_WEIGHTS})")
    p.add_argument("--init", default=None, help="start from these weights (default: a fresh tiny backbone)")
    args = p.parse_args()
    weight_sets = args.weights.split(",")
    unknown = [w for w in weight_sets if w not in WEIGHT_SETS]
    if unknown:
        p.error(f"--weights: unknown {', '.join(unknown)}; choose from {', '.join(WEIGHT_SETS)}")
    if args.init:  # the weights bring their own positions
        args.positions = model_source(args.init).positions
    with tempfile.TemporaryDirectory() as tmp:
        data = smallest_tasks_file(args.tasks, Path(tmp))
        print(f"{args.tasks} smallest arc-agi-1/training tasks, {args.budget_min:g} min per configuration, "
              f"lr {args.lr:g}, batch {args.batch_size}, augment {not args.no_augment}, "
              f"from {args.init or 'random weights'}")
        results = [run_one(data, Path(tmp), mode, pos, w, args) for mode in args.modes.split(",")
                   for pos in args.positions.split(",") for w in weight_sets]
    print()
    print("mode/positions/weights  steps  loss per tenth of the budget" + " " * 38 + "train accuracy")
    for r in results:
        curve = " ".join(f"{v:.3f}" for v in r["curve"])
        print(f"{r['config']:<23} {r['steps']:>5}  {curve}  {r['right']}/{r['total']} "
              f"({100 * r['right'] / max(r['total'], 1):.1f}%)")


if __name__ == "__main__":
    main()
