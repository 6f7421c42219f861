"""Time and memory of long sequences on a CPU: a forward pass and a training step at 2k, 4k, 8k tokens.

    python benchmarks/long_context.py                      # the tiny preset, 2d-match places, one thread
    python benchmarks/long_context.py --threads 2 --lengths 2048,8192 --model-name small

Each (length, kind) runs in a fresh process, so the peak resident memory it reports (the
process's high-water mark minus what it held before the first pass, `ru_maxrss`) belongs to
that pass alone. A sequence is one real task layout (demonstrations of random grids, tokens
and grid places as evaluate builds them) cut to the length; `forward` is a no-grad pass (what
answering and scoring do), `train` a forward, backward and AdamW step (what test-time and
joint training do). Prints seconds per pass (the median of --repeats after one warm-up) and
tokens per second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def one(length: int, kind: str, model_name: str, positions: str, repeats: int) -> dict:
    import torch

    from arc_efe.data.tasks import Pair
    from arc_efe.data.tokens import encode_task
    from arc_efe.model.policy import Policy
    from arc_efe.model.backbone import BackboneConfig, load_backbone

    rng = np.random.default_rng(0)
    demos = [Pair(rng.integers(0, 10, (30, 30)).astype(np.uint8), rng.integers(0, 10, (30, 30)).astype(np.uint8))
             for _ in range(1 + length // 1800)]
    tokens = encode_task(demos, demos[0].input).prompt[:length]
    ids = torch.tensor([tokens])
    policy = Policy(load_backbone(BackboneConfig(model_name=model_name, positions=positions),
                                torch.device("cpu"), torch.float32))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def run():
        if kind == "forward":
            with torch.no_grad():
                policy(ids, None)
        else:
            logits = policy(ids, None)
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    times = []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        run()
        if k:  # the first pass warms up
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = statistics.median(times)
    return {"length": len(tokens), "kind": kind, "seconds": seconds, "tokens_per_s": len(tokens) / seconds,
            "peak_mb": (peak - before) / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="2048,4096,8192")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model-name", default="tiny")
    p.add_argument("--positions", default="2d-match")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", nargs=2, metavar=("LENGTH", "KIND"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(one(int(args.child[0]), args.child[1], args.model_name, args.positions, args.repeats)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"{args.model_name} preset, {args.positions} places, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'tokens':>7} {'pass':>8} {'seconds':>8} {'tokens/s':>9} {'peak MB':>8}")
    for length in (int(x) for x in args.lengths.split(",")):
        for kind in ("forward", "train"):
            out = subprocess.run([sys.executable, __file__, "--child", str(length), kind, "--threads",
                                  str(args.threads), "--model-name", args.model_name, "--positions", args.positions,
                                  "--repeats", str(args.repeats)], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['length']:>7} {kind:>8} {r['seconds']:>8.2f} {r['tokens_per_s']:>9.0f} {r['peak_mb']:>8.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
