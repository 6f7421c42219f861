"""Test-time training from scratch (or from a checkpoint) on the smallest ARC evaluation tasks.

    python benchmarks/ttt_scratch.py                         # fresh tiny backbone, 60 s per task, CPU
    python benchmarks/ttt_scratch.py --budget-s 20 --tasks 10
    python benchmarks/ttt_scratch.py --checkpoint runs/pretrain --device cuda

For each of the `--tasks` smallest `arc-agi-1/evaluation` tasks (by token count) the model
trains on the task's demonstrations (leave-one-out, random views) for `--budget-s` seconds,
then answers every test input twice from the same adapted weights: from the task as it is
(one view) and by voting over `--views` views. The weights are restored before the next
task. Prints the tasks solved each way (official pass@2) and the seconds per task.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from arc_efe.model.positions import DEFAULT_POSITIONS
from arc_efe.inference.evaluate import AUTO, load_policy, view_kinds
from arc_efe.inference.pipeline import InferenceConfig
from arc_efe.inference.ttt import TTTConfig
from arc_efe.model.device import resolve_device

from common import smallest_tasks, ttt_and_vote


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=30, help="smallest arc-agi-1/evaluation tasks")
    p.add_argument("--budget-s", type=float, default=60.0, help="test-time training seconds per task")
    p.add_argument("--max-steps", type=int, default=10_000, help="test-time steps per task, at most")
    p.add_argument("--lr", type=float, default=1e-3, help="test-time learning rate")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mode", choices=("auto", "full", "lora"), default="auto")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--decoder", choices=("dfs", "greedy"), default="dfs")
    p.add_argument("--min-prob", type=float, default=0.1)
    p.add_argument("--checkpoint", default=None, help="a training run to start from (default: fresh)")
    p.add_argument("--model-name", default="tiny", help="fresh backbone when no --checkpoint")
    p.add_argument("--positions", default=DEFAULT_POSITIONS,
                   help="grid positions of a fresh backbone (1d, 2d, 2d-mirror, 2d-paired, 2d-match)")
    p.add_argument("--ttt-views", default=AUTO,
                   help="views of the demonstrations in test-time training (ttt.TTT_VIEWS; auto as evaluate's)")
    p.add_argument("--answer-views", default=AUTO, help="views that answer (all, rule; auto as evaluate's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    policy, _, _, max_len = load_policy(Path(args.checkpoint) if args.checkpoint else None, args.model_name, device,
                                    args.positions)
    tasks = smallest_tasks(args.tasks, "arc-agi-1/evaluation")
    ttt_views, answer_views = view_kinds(args, fresh=args.checkpoint is None)
    ttt = TTTConfig(steps=args.max_steps, lr=args.lr, mode=args.mode, batch=args.batch,
                    seconds=args.budget_s, max_len=max_len, seed=args.seed, views=ttt_views)
    inf = InferenceConfig(views=args.views, view_kind=answer_views, decoder=args.decoder, min_prob=args.min_prob, max_len=max_len,
                          seed=args.seed, max_side=30)
    start = "checkpoint " + args.checkpoint if args.checkpoint else f"fresh {args.model_name} backbone"
    print(f"test-time training from a {start} on the {len(tasks)} smallest arc-agi-1/evaluation tasks, "
          f"{args.budget_s:.0f} s per task, lr {args.lr}, {args.device}")
    t0 = time.time()
    res = ttt_and_vote(policy, tasks, ttt, inf)
    print(f"\nsolved (pass@2, every test output right), {res['tasks']} tasks:")
    for name, n in res["solved"].items():
        print(f"  {name:<10} {n}/{res['tasks']}")
    print(f"seconds per task (training + answering): {res['seconds_per_task']:.1f}; total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
