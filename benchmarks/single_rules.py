"""Single-rule tasks through `arc-efe evaluate` with its defaults: are the simplest rules solved?

    python benchmarks/single_rules.py                               # fresh tiny backbone, evaluate's defaults
    python benchmarks/single_rules.py --checkpoint runs/pretrain    # from a trained model
    python benchmarks/single_rules.py --seeds 0,1 -- --ttt-views rule --ttt-seconds 40

Nine kinds (flip left-right / up-down, transpose, rotate 90 / 180 / 270, recolour one colour,
swap two colours, colour every non-zero cell; `arc_efe.data.synthetic.single_rules`), grids 3x3 to
5x5, four demonstrations and one test input each, drawn from each seed. The tasks go through
the real `arc-efe evaluate` command (anything after `--` is passed on to it), and the script
prints, per kind, whether it was solved (official pass@2) and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from arc_efe.cli import main as cli
from arc_efe.data.synthetic.single_rules import KINDS, single_rule_tasks


def main() -> None:
    argv = sys.argv[1:]
    passed = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0", help="comma-separated seeds; one task per kind and seed")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--checkpoint", default="fresh",
                   help="evaluate's --checkpoint: fresh (default: an untrained tiny backbone), a model folder "
                        "such as models/arc-efe-tiny, a training run or a checkpoint")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    kinds = args.kinds.split(",")
    tasks = [t for s in seeds for t in single_rule_tasks(s, kinds=kinds)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "single_rules.json"
        data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
        command = ["evaluate", "--data", str(data), "--device", args.device, "--output-dir", f"{tmp}/eval",
                   "--no-progress", "--checkpoint", args.checkpoint, *passed]
        print("arc-efe " + " ".join(command[:1] + command[5:]), flush=True)
        if cli(command) != 0:
            raise SystemExit("evaluate failed")
        records = [json.loads(line) for line in (Path(tmp) / "eval" / "eval.jsonl").read_text().splitlines()]
    solved_kinds = set()
    print(f"\n{'task':<22} {'solved':>7} {'seconds':>8} {'ttt steps':>10}")
    for r in records:
        ok = all(r["correct"])
        if ok:
            solved_kinds.add(r["task_id"].rsplit("-s", 1)[0])
        print(f"{r['task_id']:<22} {'yes' if ok else 'no':>7} {r['seconds']:>8.1f} {r['ttt']['steps']:>10}")
    n_ok = sum(all(r["correct"]) for r in records)
    mean_s = sum(r["seconds"] for r in records) / max(len(records), 1)
    print(f"\nsolved {n_ok}/{len(records)} tasks; kinds with a solved task: {len(solved_kinds)}/{len(kinds)} "
          f"({', '.join(sorted(solved_kinds)) or 'none'}); {mean_s:.1f} s per task")


if __name__ == "__main__":
    main()
