"""Could a stored task help the model read a new one? What Solver2's memory has to work with.

    python benchmarks/memory_probe.py --bank banks/training-no-dev                 # 50 dev tasks, seed 0
    python benchmarks/memory_probe.py --answers arc-agi-1/training-no-dev,arc-agi-1/dev
    python benchmarks/memory_probe.py --bank banks/training-no-dev --mode weights --search all

For each task answered (`--data`, `--tasks` drawn with `--sample-seed`, as
`benchmarks/full_eval.py` draws them) it takes the `--search` stored tasks nearest by key (or
all of them) and measures how much each one lowers the model's loss on the task's own
leave-one-out queries (its demonstrations only; per answer token, over log(vocabulary), as
test-time training's loss):

- `--mode context`: the stored task's pairs put before the task's demonstrations, as the
  memory's check (`Recall.helpful`) puts them;
- `--mode weights`: the model after `--steps` test-time training steps on the stored task
  (its demonstrations and its solved test pair as demonstrations), against the model as it is.

The stored tasks are a bank's verified solutions (`--bank`, what `evaluate --memory` reads) or
the known test outputs of training sources (`--answers`, one solved test output per task).
Never a task being answered, never an evaluation task. It prints per task the base loss and
the four largest falls (`ok`: every query fell), then the largest fall, and how many (task,
stored task) pairs would pass the memory's check at `--gain`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from arc_efe.data.dataset import Query
from arc_efe.data.sources import evaluation_ids, load_tasks
from arc_efe.data.tasks import Task
from arc_efe.inference.evaluate import load_policy, load_recall
from arc_efe.inference.ttt import TestTimeTrainer, TTTConfig
from arc_efe.saved.modelfolder import shipped_model
from arc_efe.solver2.recall import Recall, loo_losses, solved_pairs

from full_eval import chosen_tasks


def stored_recall(args: argparse.Namespace, policy, answering: list[str]) -> Recall:
    if args.bank:
        return load_recall(args.bank, policy, answering, args.max_len)
    forbidden = set(answering) | evaluation_ids()
    queries = [Query(t, 0, "test") for source in args.answers.split(",") for t in load_tasks(source).tasks
               if t.id not in forbidden and t.has_answers]
    return Recall.of_queries(policy, queries, args.max_len)


def weight_change(trainer: TestTimeTrainer, stored: Query) -> list[torch.Tensor]:
    """What `trainer`'s test-time training on the stored task changes in the weights."""
    before = [p.detach().clone() for p in trainer.params]
    with trainer.adapted(Task(stored.task.id, solved_pairs(stored), ())):
        return [p.detach() - p0 for p, p0 in zip(trainer.params, before)]


@torch.no_grad()
def shifted_losses(trainer: TestTimeTrainer, delta: list[torch.Tensor], task: Task, max_len: int):
    for p, d in zip(trainer.params, delta):
        p.add_(d)
    try:
        return loo_losses(trainer.policy, task, max_len)
    finally:
        for p, d in zip(trainer.params, delta):
            p.sub_(d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bank", help="a memory bank folder, a run or a checkpoint (what evaluate --memory reads)")
    src.add_argument("--answers", help="comma-separated training sources whose known test outputs are stored")
    p.add_argument("--data", default="arc-agi-1/dev")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="a model folder (default: the shipped model)")
    p.add_argument("--mode", choices=("context", "weights"), default="context")
    p.add_argument("--search", default="4", help="stored tasks nearest by key per task, or 'all'")
    p.add_argument("--steps", type=int, default=16, help="test-time steps on a stored task (--mode weights)")
    p.add_argument("--gain", type=float, default=0.01, help="the memory's check: mean fall needed")
    p.add_argument("--max-len", type=int, default=8192)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    policy, *_ = load_policy(Path(args.checkpoint) if args.checkpoint else shipped_model(), "tiny", device)
    policy.eval()
    tasks = chosen_tasks(args.data, args.tasks, args.sample_seed)
    recall = stored_recall(args, policy, [t.id for t in tasks])
    search = len(recall) if args.search == "all" else int(args.search)
    print(f"{len(tasks)} tasks of {args.data}; {recall.summary()}; mode {args.mode}, {search} searched per task",
          flush=True)
    trainer, deltas = None, {}
    if args.mode == "weights":
        trainer = TestTimeTrainer(policy, TTTConfig(steps=args.steps, max_len=args.max_len))
    start = time.time()
    best, passing, pairs = (0.0, "", ""), 0, 0
    for task in tasks:
        base = loo_losses(policy, task, args.max_len)
        if not base:
            print(f"{task.id}: a demonstration does not fit whole, or fewer than two: skipped")
            continue
        falls = []
        for stored in recall.nearest(policy, task, search, args.max_len):
            if trainer is not None:
                if stored.task.id not in deltas:
                    deltas[stored.task.id] = weight_change(trainer, stored)
                losses = shifted_losses(trainer, deltas[stored.task.id], task, args.max_len)
            else:
                losses = loo_losses(policy, task, args.max_len, stored)
            if losses is None:
                continue
            gains = [b - x for b, x in zip(base, losses)]
            mean, every = sum(gains) / len(gains), min(gains) > 0
            falls.append((mean, every, stored.task.id))
            pairs += 1
            passing += every and mean >= args.gain
            if every and mean > best[0]:
                best = (mean, task.id, stored.task.id)
        falls.sort(reverse=True)
        print(f"{task.id}: base {sum(base) / len(base):.4f}; "
              + " ".join(f"{i}:{m:+.3f}{' ok' if a else ''}" for m, a, i in falls[:4]), flush=True)
    top = f"{best[0]:.3f} ({best[1]} with {best[2]})" if best[1] else "none"
    print(f"largest mean fall with every query lower: {top}; "
          f"{passing} of {pairs} pairs pass the check at {args.gain:g}; {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
