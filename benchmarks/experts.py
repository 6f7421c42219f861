"""Is a task better answered by several test-time trainings pooled (`evaluate --experts N`)?

    python benchmarks/experts.py -- --ttt-steps 16                      # 50 dev tasks: 1 expert vs 2
    python benchmarks/experts.py --experts-flags '--views 4' -- --ttt-steps 8   # equal compute: 2 x 4 views x 8 steps
    python benchmarks/experts.py --data arc-agi-1/evaluation --tasks 40 -- --ttt-steps 16

Two arms side by side, one thread each, through `benchmarks/full_eval.py` (resumable: the same
command goes on after a stop), into OUTPUT_DIR/one and OUTPUT_DIR/experts: evaluate's flags
after `--` for both, and `--experts N` plus `--one-flags` / `--experts-flags` for each. Then it
prints the tasks each arm solved, the tasks whose answer (either attempt) changed and which of
those the experts made right or wrong, and the tasks solved by either arm (what a perfect
choice between the two arms' answers would reach). Give fixed `--ttt-steps` to compare exactly:
a seconds budget gives each arm the steps its share of the machine allows.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from common import split_passthrough
from memory_at_eval import compare, records, solved

HERE = Path(__file__).resolve().parent


def main() -> None:
    argv, passed = split_passthrough(sys.argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experts", type=int, default=2, help="evaluate's --experts in the second arm")
    p.add_argument("--one-flags", default="", help="evaluate's flags for the first arm only")
    p.add_argument("--experts-flags", default="", help="evaluate's flags for the second arm only")
    p.add_argument("--data", default="arc-agi-1/dev")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--sample-seed", type=int, default=0, help="the draw of the tasks")
    p.add_argument("--output-dir", default=None, help="default: experts_eval/<data with / as _>")
    args = p.parse_args(argv)
    if args.experts < 2:
        p.error("--experts must be at least 2 (the first arm is one expert)")
    out = Path(args.output_dir or f"experts_eval/{args.data.replace('/', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    arms = {"one": shlex.split(args.one_flags),
            "experts": ["--experts", str(args.experts), *shlex.split(args.experts_flags)]}
    procs = []
    for arm, extra in arms.items():
        command = [sys.executable, str(HERE / "full_eval.py"), "--data", args.data, "--tasks", str(args.tasks),
                   "--sample-seed", str(args.sample_seed), "--shards", "1",
                   "--output-dir", str(out / arm), "--", *passed, *extra]
        log = open(out / f"{arm}.log", "a")
        print(f"{arm}: {shlex.join(command)}", flush=True)
        procs.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "OMP_NUM_THREADS": "1"}), log))
    codes = [proc.wait() for proc, _ in procs]  # both, even when one fails
    for _, log in procs:
        log.close()
    if any(codes):
        raise SystemExit(f"an arm failed: see {out}/*.log; the same command goes on")
    one, many = records(out / "one"), records(out / "experts")
    c = compare(one, many)
    either = sorted(t for t in set(one) & set(many) if solved(one[t]) or solved(many[t]))
    seconds = {arm: sum(r["seconds"] for r in recs.values()) / max(len(recs), 1)
               for arm, recs in (("one", one), ("experts", many))}
    print(f"solved {c['off']}/{c['tasks']} with one expert ({seconds['one']:.1f} s per task), "
          f"{c['on']}/{c['tasks']} with {args.experts} ({seconds['experts']:.1f} s per task)")
    print(f"answers changed in {len(c['changed'])} tasks; better with experts: {', '.join(c['better']) or 'none'}; "
          f"worse: {', '.join(c['worse']) or 'none'}")
    print(f"solved by either arm: {len(either)} ({', '.join(either) or 'none'})")


if __name__ == "__main__":
    main()
