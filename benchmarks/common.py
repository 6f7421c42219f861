"""Shared pieces of the CPU-budget benchmarks: a small task subset and a timed training loop."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from arc_efe.sources import load_tasks
from arc_efe.tokens import encode_task
from arc_efe.train import Run, build_micro_batch, train_step


def smallest_tasks_file(n: int, folder: Path, source: str = "arc-agi-1/training") -> Path:
    """The n smallest tasks of `source` by token count, written as a task-dictionary file."""
    def size(t):
        return sum(len(encode_task(t.train, p.input, p.output).tokens) for p in t.test)
    tasks = sorted(load_tasks(source).tasks, key=size)[:n]
    path = folder / f"smallest_{n}.json"
    path.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    return path


def train_for(run: Run, seconds: float, callbacks: Sequence[Callable] = ()) -> dict:
    """Train in one endless epoch of reshuffled passes until `seconds` have gone by."""
    t0 = time.time()
    losses, times = [], []
    step = 0
    while time.time() - t0 < seconds:
        stats, result = train_step(run, 0, [build_micro_batch(run, 0, step)], step)
        for cb in callbacks:
            cb(result)
        step += 1
        losses.append(stats["loss"])
        times.append(time.time() - t0)
    curve = []
    for k in range(10):
        sel = [l for l, t in zip(losses, times) if k * seconds / 10 <= t < (k + 1) * seconds / 10]
        curve.append(float(np.mean(sel)) if sel else float("nan"))
    return {"steps": step, "curve": curve}
