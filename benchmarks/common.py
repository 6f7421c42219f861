"""Shared pieces of the CPU-budget benchmarks: a small task subset and a timed training loop."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from arc_efe.data.sources import load_tasks
from arc_efe.data.tasks import Task, grids_equal
from arc_efe.data.tokens import encode_task
from arc_efe.inference.pipeline import InferenceConfig, solve_output, task_views
from arc_efe.inference.ttt import TestTimeTrainer, TTTConfig
from arc_efe.loss import DEFAULT_WEIGHTS
from arc_efe.model.policy import Policy
from arc_efe.training.trainer import Trainer

# The pretraining recipe's loss (`make pretrain`): the risk term alone.
RISK_ALONE = {**DEFAULT_WEIGHTS, "consistency": 0.0, "bidirectional": 0.0, "step": 0.0}


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(this script's arguments, those after `--`, which go to `arc-efe evaluate` unchanged)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    return argv[: argv.index("--")], argv[argv.index("--") + 1:]


def smallest_tasks(n: int, source: str = "arc-agi-1/training") -> list[Task]:
    """The n smallest tasks of `source` by token count (every test output with its demonstrations)."""
    def size(t):
        return sum(len(encode_task(t.train, p.input, p.output).tokens) for p in t.test)
    return sorted(load_tasks(source).tasks, key=size)[:n]


def smallest_tasks_file(n: int, folder: Path, source: str = "arc-agi-1/training") -> Path:
    """The n smallest tasks of `source`, written as a task-dictionary file."""
    tasks = smallest_tasks(n, source)
    path = folder / f"smallest_{n}.json"
    path.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    return path


def train_for(run: Trainer, seconds: float, callbacks: Sequence[Callable] = ()) -> dict:
    """Train in one endless epoch of reshuffled passes until `seconds` have gone by."""
    t0 = time.time()
    losses, times = [], []
    step = 0
    while time.time() - t0 < seconds:
        outcome = run.step(0, [run.micro_batch(0, step)])
        for cb in callbacks:
            cb(outcome)
        step += 1
        losses.append(outcome.loss)
        times.append(time.time() - t0)
    curve = []
    for k in range(10):
        sel = [l for l, t in zip(losses, times) if k * seconds / 10 <= t < (k + 1) * seconds / 10]
        curve.append(float(np.mean(sel)) if sel else float("nan"))
    return {"steps": step, "curve": curve, "losses": losses}


def ttt_and_vote(policy: Policy, tasks: Sequence[Task], ttt: TTTConfig | None, inf: InferenceConfig,
                 log: Callable[[str], None] = print) -> dict:
    """Per task: test-time training (when `ttt` has steps), then answers from the identity
    view alone and from `inf.views` views with voting, both from the same adapted weights.
    Returns the tasks solved (every test output right within 2 attempts) each way."""
    trainer = TestTimeTrainer(policy, ttt) if ttt is not None and ttt.enabled else None
    solved = {"1 view": 0, f"{inf.views} views": 0}
    seconds = []
    try:
        for k, task in enumerate(tasks, 1):
            t0 = time.time()
            views = task_views(task, inf.views, inf.seed, inf.view_kind)
            with (trainer.adapted(task) if trainer else _no_ttt()) as stats:
                row = {}
                for name, vs in (("1 view", views[:1]), (f"{inf.views} views", views)):
                    outs = [solve_output(policy, task, i, vs, inf) for i in range(len(task.test))]
                    row[name] = all(any(grids_equal(a, p.output) for a in o.attempts)
                                    for o, p in zip(outs, task.test))
                    solved[name] += row[name]
            seconds.append(time.time() - t0)
            ttt_text = (f"ttt {stats.steps} steps loss {stats.first_loss:.3f}->{stats.last_loss:.3f}"
                        if stats.steps else "no ttt")
            log(f"  [{k}/{len(tasks)}] {task.id}: {ttt_text}; 1 view {'right' if row['1 view'] else 'wrong'}, "
                f"{inf.views} views {'right' if row[f'{inf.views} views'] else 'wrong'}; {seconds[-1]:.0f}s")
    finally:
        if trainer is not None:
            trainer.close()
    return {"solved": solved, "tasks": len(tasks), "seconds_per_task": float(np.mean(seconds)) if seconds else 0.0}


class _no_ttt:
    def __enter__(self):
        from arc_efe.inference.ttt import TTTStats
        return TTTStats()

    def __exit__(self, *exc):
        return False
