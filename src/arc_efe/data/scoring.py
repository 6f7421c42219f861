"""Kaggle `submission.json` files and the official ARC Prize pass@2 score.

A submission maps each task id to one entry per test output, in order:
`{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}`.

Rule: a test output is right when either attempt equals it exactly (same shape, every
cell); a task scores the fraction of its test outputs that are right; the benchmark score
is the mean of the task scores. Missing tasks, missing entries, missing attempts and
malformed grids all count as wrong and are listed in the report; they never crash scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import DataError, SubmissionError
from .files import atomic_write_json
from .jsonfile import read_json
from .tasks import Grid, Task, grids_equal, json_kind, parse_grid

ATTEMPTS = ("attempt_1", "attempt_2")


@dataclass
class TaskScore:
    task_id: str
    right: list[bool]  # one per test output
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(self.right) / len(self.right)


@dataclass
class ScoreReport:
    tasks: list[TaskScore]
    problems: list[str] = field(default_factory=list)  # not tied to one scored task

    @property
    def score(self) -> float:
        """Mean over tasks of the fraction of test outputs right (0 for no tasks)."""
        return sum(t.score for t in self.tasks) / len(self.tasks) if self.tasks else 0.0

    @property
    def tasks_solved(self) -> int:
        return sum(all(t.right) for t in self.tasks)

    @property
    def outputs_right(self) -> int:
        return sum(sum(t.right) for t in self.tasks)

    @property
    def outputs_total(self) -> int:
        return sum(len(t.right) for t in self.tasks)

    def summary(self) -> str:
        return (f"score {self.score:.4f} ({self.score * 100:.2f}%) over {len(self.tasks)} tasks: "
                f"{self.tasks_solved} {'task' if self.tasks_solved == 1 else 'tasks'} fully solved, "
                f"{self.outputs_right}/{self.outputs_total} test outputs right")


def read_submission(path: str | Path) -> dict[str, Any]:
    """Read a submission file; only a file that is not a JSON object is an error here.

    A task id given twice is one too: which of its answers would count cannot be told.
    """
    name = str(path)
    if not Path(path).is_file():
        raise SubmissionError(f"{name} not found (submission file)")
    raw = read_json(Path(path), name, error=SubmissionError)
    if not isinstance(raw, dict):
        raise SubmissionError(f"{name}: top level is {json_kind(raw)}, expected "
                              '{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}')
    return raw


def write_submission(path: str | Path, submission: dict[str, list[dict[str, list]]]) -> None:
    atomic_write_json(path, submission)


def make_entry(attempts: Sequence[Grid]) -> dict[str, list]:
    """One submission entry from up to 2 grids (fewer are repeated; none gives [[0]])."""
    grids = [g.tolist() for g in attempts[: len(ATTEMPTS)]] or [[[0]]]
    while len(grids) < len(ATTEMPTS):
        grids.append(grids[-1])
    return dict(zip(ATTEMPTS, grids))


def score_submission(submission: dict[str, Any], tasks: Sequence[Task]) -> ScoreReport:
    """Score against tasks whose test outputs are known (official pass@2 rule)."""
    report = ScoreReport(tasks=[])
    for task in tasks:
        if not task.has_answers:
            report.problems.append(f"task {task.id}: answers unknown, not scored")
            continue
        report.tasks.append(_score_task(task, submission.get(task.id)))
    known = {t.id for t in tasks}
    extra = sorted(str(k) for k in submission if k not in known)
    if extra:
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        report.problems.append(f"{len(extra)} submitted tasks are not in the data, ignored: {shown}")
    return report


def _score_task(task: Task, entries: Any) -> TaskScore:
    ts = TaskScore(task.id, [False] * len(task.test))
    if entries is None:
        ts.problems.append("missing from the submission")
        return ts
    if not isinstance(entries, list):
        ts.problems.append(f"entry is {json_kind(entries)}, not a list (one item per test output)")
        return ts
    if len(entries) != len(task.test):
        ts.problems.append(f"{len(entries)} entries for {len(task.test)} test outputs")
    for k, pair in enumerate(task.test):
        if k >= len(entries):
            break
        entry = entries[k]
        if not isinstance(entry, dict):
            ts.problems.append(f"[{k}] is not an object with attempt_1/attempt_2")
            continue
        for name in ATTEMPTS:
            if name not in entry:
                ts.problems.append(f"[{k}].{name} missing")
                continue
            try:
                grid = parse_grid(entry[name], f"[{k}].{name}")
            except DataError as e:
                ts.problems.append(f"{e} (counted wrong)")
                continue
            if grids_equal(grid, pair.output):
                ts.right[k] = True
    return ts


def report_lines(report: ScoreReport, per_task: bool = True) -> list[str]:
    lines = []
    if per_task:
        for t in report.tasks:
            mark = "right" if all(t.right) else ("partly" if any(t.right) else "wrong")
            note = f"  ({'; '.join(t.problems)})" if t.problems else ""
            lines.append(f"{t.task_id:<12} {sum(t.right)}/{len(t.right)} {mark}{note}")
    lines += [f"note: {p}" for p in report.problems]
    lines.append(report.summary())
    return lines


def dumps_report(report: ScoreReport) -> str:
    return json.dumps({
        "score": report.score,
        "tasks": {t.task_id: {"score": t.score, "right": t.right, "problems": t.problems}
                  for t in report.tasks},
        "problems": report.problems,
    }, indent=1)
