"""`ARCDataset`: the users' dataset interface, with every query conditioned on its task.

    ds = ARCDataset("training.json", split="train")
    item = ds[0]  # {"input", "output", "context", "task_id", ...}

`split` keeps its ARC meaning:
- `"train"`: one query per demonstration pair, leave-one-out: the task's other
  demonstrations are the query's context;
- `"test"`: the task's test pairs (answer included when known), all demonstrations as context.

The validation holdout is by task and separate from `split`: `val_fraction` picks a
deterministic, seedable set of tasks (a task is never split); `val=True` returns those
tasks, `val=False` (default) the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .sources import LoadResult, load_tasks
from .tasks import Pair, Task

SPLITS = ("train", "test")


def split_tasks(tasks: Sequence[Task], val_fraction: float, seed: int = 0) -> tuple[list[Task], list[Task]]:
    """Deterministic task-level holdout: (rest, held_out).

    Tasks are ranked by a hash of (seed, task id), so the choice does not depend on the
    order of the file, and adding tasks to a source does not move the others across.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(len(tasks) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(tasks) > 1:
        n_val = 1
    ranked = sorted(tasks, key=lambda t: hashlib.sha256(f"{seed}:{t.id}".encode()).hexdigest())
    held = {t.id for t in ranked[:n_val]}
    return [t for t in tasks if t.id not in held], [t for t in tasks if t.id in held]


@dataclass(frozen=True)
class Query:
    """One prediction problem: predict `target.output` from `target.input` given `context`."""
    task: Task
    index: int  # position of the query pair in task.train ("train") or task.test ("test")
    split: str

    @property
    def target(self) -> Pair:
        return (self.task.train if self.split == "train" else self.task.test)[self.index]

    @property
    def context(self) -> tuple[Pair, ...]:
        if self.split == "train":
            return tuple(p for i, p in enumerate(self.task.train) if i != self.index)
        return self.task.train


def make_queries(tasks: Sequence[Task], split: str) -> list[Query]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return [Query(t, i, split) for t in tasks
            for i in range(len(t.train if split == "train" else t.test))]


def _grid_tensor(grid) -> torch.Tensor | None:
    return None if grid is None else torch.as_tensor(grid, dtype=torch.long)


class ARCDataset(torch.utils.data.Dataset):
    def __init__(self, source: str | Path | Sequence[Task] = "arc-agi-1/training", split: str = "train",
                 val_fraction: float = 0.0, val: bool = False, seed: int = 0,
                 solutions: str | Path | None = None, skip_invalid: bool = False):
        if isinstance(source, (str, Path)):
            self.loaded: LoadResult | None = load_tasks(source, solutions, skip_invalid)
            tasks = self.loaded.tasks
        else:
            self.loaded = None
            tasks = list(source)
        rest, held = split_tasks(tasks, val_fraction, seed)
        self.tasks = held if val else rest
        self.split = split
        self.queries = make_queries(self.tasks, split)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        q = self.queries[i]
        return {
            "task_id": q.task.id,
            "index": q.index,
            "input": _grid_tensor(q.target.input),
            "output": _grid_tensor(q.target.output),  # None for a test pair without answer
            "context": [{"input": _grid_tensor(p.input), "output": _grid_tensor(p.output)}
                        for p in q.context],
        }

    def __repr__(self) -> str:
        return (f"ARCDataset({len(self.tasks)} tasks, split={self.split!r}, "
                f"{len(self.queries)} queries)")
