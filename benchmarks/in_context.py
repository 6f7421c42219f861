"""In-context exact accuracy of a model, per generated family: no test-time training.

    python benchmarks/in_context.py                              # the shipped models/arc-efe-tiny
    python benchmarks/in_context.py --checkpoint runs/RUN --tasks 100
    python benchmarks/in_context.py --families all --side 8

The same measure as training's "In-context Accuracy" line (greedy answer on the task as it
is, exact or wrong), on fresh tasks of each family drawn with the in-context seed, which no
training source uses: the seven calibration families by default, every family with
`--families all`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from arc_efe.data.dataset import make_queries
from arc_efe.data.synthetic import FAMILIES, SyntheticSource, fits_side
from arc_efe.inference.evaluate import load_policy
from arc_efe.model.device import resolve_device
from arc_efe.saved.modelfolder import FRESH, SHIPPED
from arc_efe.training.evaluation import ICL_FAMILIES, ICL_SEED, ICL_SIDE, exact_accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(SHIPPED),
                   help=f"a model folder, training run or checkpoint (default: the shipped model); {FRESH}: untrained")
    p.add_argument("--families", default=ICL_FAMILIES, help="comma-separated, or 'all'")
    p.add_argument("--tasks", type=int, default=64, help="fresh tasks per family")
    p.add_argument("--side", type=int, default=ICL_SIDE, help="largest grid side of the tasks")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-shape-rule", action="store_true", help="decode answers of any size (see evaluate)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = None if args.checkpoint == FRESH else Path(args.checkpoint)
    policy, _, _, max_len = load_policy(path, "tiny", resolve_device(args.device))
    families = sorted(FAMILIES) if args.families == "all" else args.families.split(",")
    print(f"model: {args.checkpoint}; {args.tasks} fresh tasks per family (seed {ICL_SEED}), grids up to "
          f"{args.side}x{args.side}, greedy, no test-time training")
    print(f"{'family':<28} {'exact':>9} {'%':>7}")
    right_all = total_all = 0
    start = time.perf_counter()
    for family in families:
        if not fits_side(family, args.side):
            print(f"{family:<28} {'(no task fits)':>17}")
            continue
        tasks = SyntheticSource(f"synthetic/{family}:{args.side}", ICL_SEED).tasks(args.tasks)
        queries = [make_queries([t], "test")[0] for t in tasks]
        right, total = exact_accuracy(policy, queries, max_len, args.side, not args.no_shape_rule)
        right_all, total_all = right_all + right, total_all + total
        print(f"{family:<28} {f'{right}/{total}':>9} {100 * right / total:>6.1f}%", flush=True)
    print(f"{'overall':<28} {f'{right_all}/{total_all}':>9} {100 * right_all / max(total_all, 1):>6.1f}%  "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
