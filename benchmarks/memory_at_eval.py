"""Does Solver2's memory improve answers? The same model and seconds with and without `--memory`.

    python benchmarks/memory_at_eval.py --bank runs/bank                         # 50 dev tasks, seed 0
    python benchmarks/memory_at_eval.py --bank runs/bank --seeds 0,1,2           # three seeds
    python benchmarks/memory_at_eval.py --bank runs/bank --data arc-agi-1/evaluation --tasks 40
    python benchmarks/memory_at_eval.py --bank runs/bank -- --ttt-seconds 10     # evaluate's flags after --

The bank is one made from training tasks only: the test outputs an evaluation of the tasks
outside the development split got right,

    python benchmarks/full_eval.py --data arc-agi-1/training-no-dev --output-dir full_eval/training-no-dev -- --ttt-steps 16
    arc-efe bank full_eval/training-no-dev --output banks/training-no-dev

or the queries a training run with the memory on answered right (a run folder as --bank):

    arc-efe train --data arc-agi-1/training-no-dev --epochs 2 --max-batches 150 --output-dir runs --run-name bank

For each seed (`evaluate --seed`: views and test-time training draws) the two arms run side
by side, one thread each, through `benchmarks/full_eval.py` (resumable: the same command
goes on after a stop), into OUTPUT_DIR/seed_S/{off,on}. Then it prints, per seed and in all:
tasks solved with and without memory, the tasks whose answer (either attempt) changed, and
of those the ones memory made right and the ones it made wrong; with several seeds, also the
same counts between the runs without memory of one seed and the next (what the seed alone
moves: the noise that memory's effect must exceed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from arc_efe.inference.evaluate import evaluation_records

from common import split_passthrough

HERE = Path(__file__).resolve().parent


def records(folder: Path) -> dict[str, dict]:
    return {r["task_id"]: r for r in evaluation_records(folder)}


def solved(record: dict) -> bool:
    return bool(record["correct"]) and all(record["correct"])


def compare(off: dict[str, dict], on: dict[str, dict]) -> dict:
    both = sorted(set(off) & set(on))
    changed = [t for t in both if off[t]["attempts"] != on[t]["attempts"]]
    return {"tasks": len(both), "off": sum(solved(off[t]) for t in both), "on": sum(solved(on[t]) for t in both),
            "changed": changed, "better": [t for t in changed if solved(on[t]) and not solved(off[t])],
            "worse": [t for t in changed if solved(off[t]) and not solved(on[t])]}


def seed_noise(offs: list[dict[str, dict]]) -> dict | None:
    """What the seed alone changes: `compare` of the runs without memory, each seed against the
    next, summed (None with one seed). Memory's effect is beyond noise only if it exceeds this."""
    if len(offs) < 2:
        return None
    pairs = [compare(a, b) for a, b in zip(offs, offs[1:])]
    return {"pairs": [[p["off"], p["on"]] for p in pairs], "tasks": sum(p["tasks"] for p in pairs),
            **{k: sum(len(p[k]) for p in pairs) for k in ("changed", "better", "worse")}}


def main() -> None:
    argv, passed = split_passthrough(sys.argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", required=True, help="evaluate's --memory: a bank folder, a run or a checkpoint")
    p.add_argument("--data", default="arc-agi-1/dev")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--sample-seed", type=int, default=0, help="the draw of the tasks")
    p.add_argument("--seeds", default="0", help="evaluate's --seed for each pair of runs, comma-separated")
    p.add_argument("--output-dir", default=None, help="default: memory_eval/<data with / as _>")
    args = p.parse_args(argv)
    out = Path(args.output_dir or f"memory_eval/{args.data.replace('/', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    totals = {"tasks": 0, "off": 0, "on": 0, "changed": [], "better": [], "worse": []}
    offs = []  # the runs without memory, one per seed: how much answers move with the seed alone
    for seed in [int(s) for s in args.seeds.split(",")]:
        procs = []
        for arm, extra in (("off", []), ("on", ["--memory", args.bank])):
            command = [sys.executable, str(HERE / "full_eval.py"), "--data", args.data, "--tasks", str(args.tasks),
                       "--sample-seed", str(args.sample_seed), "--shards", "1",
                       "--output-dir", str(out / f"seed_{seed}" / arm), "--", "--seed", str(seed), *extra, *passed]
            log = open(out / f"seed_{seed}_{arm}.log", "a")
            procs.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           env={**os.environ, "OMP_NUM_THREADS": "1"}), log))
        codes = [proc.wait() for proc, _ in procs]  # both, even when one fails
        for _, log in procs:
            log.close()
        if any(codes):
            raise SystemExit(f"a run of seed {seed} failed: see {out}/seed_{seed}_*.log; the same command goes on")
        offs.append(records(out / f"seed_{seed}" / "off"))
        c = compare(offs[-1], records(out / f"seed_{seed}" / "on"))
        print(f"seed {seed}: solved {c['off']}/{c['tasks']} without memory, {c['on']}/{c['tasks']} with; "
              f"answers changed in {len(c['changed'])} tasks (better: {', '.join(c['better']) or 'none'}; "
              f"worse: {', '.join(c['worse']) or 'none'})", flush=True)
        for k in totals:
            totals[k] += c[k]
    print(f"in all: solved {totals['off']} without memory, {totals['on']} with, of {totals['tasks']} task runs; "
          f"{len(totals['changed'])} answers changed, {len(totals['better'])} for the better, "
          f"{len(totals['worse'])} for the worse")
    noise = seed_noise(offs)
    if noise:
        print(f"noise, the same arm without memory under another seed: {noise['changed']} answers changed of "
              f"{noise['tasks']} task runs ({len(noise['pairs'])} pairs of seeds), "
              f"{noise['better']} for the better, {noise['worse']} for the worse")
    (out / "summary.json").write_text(json.dumps({**vars(args), "passed": passed, **totals, "noise": noise},
                                                 indent=1))


if __name__ == "__main__":
    main()
