"""What a pretraining recipe trains on: the share of ARC tasks, grid sizes and sequence lengths.

    python benchmarks/recipe_mix.py                      # the full-size recipe (make pretrain-full)
    python benchmarks/recipe_mix.py --recipe small       # the small-grid recipe (make pretrain)
    python benchmarks/recipe_mix.py -- --data ... --mix ... --max-len 2048 --curriculum   # any train flags

Draws the queries the run would draw (the same (seed, epoch, batch, slot) stream as
`arc-efe train`, no model) at `--points` places spread over the run, `--batches` micro-batches
at each, and prints, per place and in all: the share of queries and of tokens from ARC tasks
(ARC-AGI-1 training, ARC-AGI-2 training) and from generated ones, the mean and largest
sequence, and the largest grid side. The curriculum shows as the generated side growing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from arc_efe.data.tokens import encode_task
from arc_efe.training.flags import add_train_args, config_from_args
from arc_efe.training.trainset import load_training_data

from common import split_passthrough

ROOT = Path(__file__).resolve().parents[1]


def recipe_flags(target: str) -> list[str]:
    """The train flags of a Makefile target (`make -n`), so the figures follow the recipe."""
    import subprocess

    text = subprocess.run(["make", "-s", "-n", target, "STAMP="], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if " -m arc_efe train " in ln)
    return shlex.split(line.split(" -m arc_efe train ", 1)[1])


def kind(source: str) -> str:
    if source.startswith("synthetic"):
        return "generated"
    return "arc-agi-2" if "arc-agi-2" in source else "arc-agi-1"


def main() -> None:
    argv, passed = split_passthrough(sys.argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=("full", "small"), default="full")
    p.add_argument("--points", type=int, default=5, help="places in the run (its start to its end)")
    p.add_argument("--batches", type=int, default=40, help="micro-batches drawn at each place")
    args = p.parse_args(argv)
    flags = passed or recipe_flags("pretrain-full" if args.recipe == "full" else "pretrain")
    os.chdir(ROOT)  # the recipe's paths are the repository's
    tp = argparse.ArgumentParser()
    add_train_args(tp)
    cfg = config_from_args(tp.parse_args(flags))
    data = load_training_data(cfg)
    per_epoch = data.batches_per_epoch(cfg)
    total = cfg.epochs * per_epoch
    print(f"train {' '.join(flags)}")
    print(f"{data.name}: {total} micro-batches of {cfg.batch_size} in all; {len(data.queries)} queries in the "
          f"finite pool; sources drawn with probabilities {', '.join(f'{x:.2f}' for x in data.probs)}\n")
    print(f"{'place':>6} {'ARC queries':>11} {'ARC tokens':>10} {'mean len':>8} {'max len':>7} "
          f"{'max side (gen)':>14} {'max side (ARC)':>14}")
    queries, tokens = Counter(), Counter()
    for point in np.linspace(0, total - args.batches, args.points).astype(int):
        q_n, t_n, lens, side = Counter(), Counter(), [], Counter()
        for g in range(point, point + args.batches):
            epoch, b = divmod(int(g), per_epoch)
            rng = np.random.default_rng([cfg.seed, epoch, b, 1])  # as train.build_micro_batch draws
            for slot in range(cfg.batch_size):
                q = data.query(cfg, epoch, b, slot, rng)
                k = kind(q.task.source)
                n = len(encode_task(q.context, q.target.input, q.target.output, cfg.max_len).tokens)
                q_n[k] += 1
                t_n[k] += n
                lens.append(n)
                big = max(max(g.shape) for pair in (*q.context, q.target) for g in (pair.input, pair.output))
                side["gen" if k == "generated" else "arc"] = max(side["gen" if k == "generated" else "arc"], big)
        queries.update(q_n)
        tokens.update(t_n)
        arc_q = (q_n["arc-agi-1"] + q_n["arc-agi-2"]) / sum(q_n.values())
        arc_t = (t_n["arc-agi-1"] + t_n["arc-agi-2"]) / sum(t_n.values())
        print(f"{100 * point / total:5.0f}% {100 * arc_q:10.1f}% {100 * arc_t:9.1f}% {np.mean(lens):8.0f} "
              f"{max(lens):7d} {side['gen']:>14} {side['arc'] or '-':>14}")
    nq, nt = sum(queries.values()), sum(tokens.values())
    print("\nin all: " + "; ".join(f"{k} {100 * queries[k] / nq:.1f}% of queries, {100 * tokens[k] / nt:.1f}% of "
                                   f"tokens" for k in ("arc-agi-1", "arc-agi-2", "generated")))


if __name__ == "__main__":
    main()
