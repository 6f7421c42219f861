"""`arc-efe report`: one self-contained HTML page about a training run.

The page holds the run's settings, its training curves (plots.py, PNG images embedded as
base64), the diagnosis text (diagnosis.py) and, when the run has been evaluated, a table of the
evaluated tasks and the chosen ones (wrong first) drawn as ARC grids (grid_svg.py):
demonstrations, test input, expected output and both attempts with wrong cells crossed out.
Nothing is loaded from elsewhere (no scripts, fonts or style sheets), so the file opens
offline, and everything taken from files is escaped.

The evaluation is `eval.jsonl` as `arc-efe evaluate` writes it, one task a line:
`{"task_id", "source", "solutions", "seconds", "sizes", "candidates", "attempts": [{"attempt_1":
grid, "attempt_2": grid}, ...], "correct": [bool, ...] or null, "scores"}`; every key but
task_id may be missing. Demonstrations and expected outputs come from loading the task again
from its source; when that fails the attempts are drawn alone, with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from ..data.files import atomic_write_text, read_jsonl
from ..data.sources import load_tasks
from ..data.synthetic import SyntheticSource, is_synthetic
from ..data.tasks import Task
from ..errors import ArcEfeError
from .diagnosis import diagnose
from .findings import render
from .grid_svg import as_grid, grid_svg, shape_text, wrong_cells
from .plots import training_plots
from .runlog import open_run

REPORT_FILE = "report.html"
EVAL_FILE = "eval.jsonl"
DEFAULT_MAX_TASKS = 10
ATTEMPTS = ("attempt_1", "attempt_2")
# Settings shown first in the settings table; the rest follow in file order.
KEY_SETTINGS = ("data", "model_name", "mode", "epochs", "max_batches", "batch_size", "agent_lr",
                "qwen_lr", "weight_decay", "weights", "memory", "device")


def _e(x: Any) -> str:
    """Text from a file, safe inside HTML text and attribute values."""
    return escape(str(x), quote=True)


# ---------------------------------------------------------------- the evaluation

@dataclass
class EvalTask:
    """One line of eval.jsonl (see the module docstring); missing keys are empty."""
    task_id: str
    source: str | None = None
    solutions: str | None = None
    seconds: float | None = None
    sizes: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    correct: list | None = None
    scores: list = field(default_factory=list)
    candidates: list = field(default_factory=list)

    @classmethod
    def from_json(cls, rec: dict, lineno: int) -> "EvalTask":
        def get(key: str, kind: type, default: Any = None) -> Any:
            value = rec.get(key)
            return value if isinstance(value, kind) and not isinstance(value, bool) else default

        return cls(str(rec.get("task_id", f"(line {lineno}, no task_id)")), get("source", str),
                   get("solutions", str), get("seconds", (int, float)), get("sizes", list, []),
                   get("attempts", list, []), get("correct", list), get("scores", list, []),
                   get("candidates", list, []))

    @property
    def score(self) -> float | None:
        """Fraction of the test outputs right; None when the answers are unknown."""
        if not self.correct:
            return None
        return sum(c is True for c in self.correct) / len(self.correct)


def find_eval(run_dir: Path, eval_arg: str | Path | None) -> Path | None:
    """The eval.jsonl to report: --eval (a file or its folder), else RUN_DIR/eval/ if there."""
    if eval_arg is None:
        default = run_dir / "eval" / EVAL_FILE
        return default if default.is_file() else None
    path = Path(eval_arg)
    if path.is_dir():
        path = path / EVAL_FILE
    if not path.is_file():
        raise ArcEfeError(f"{path}: no such file (pass the eval.jsonl that arc-efe evaluate wrote, "
                          "or its folder)")
    return path


def read_eval(path: Path) -> list[EvalTask]:
    records = read_jsonl(path, "pass the eval.jsonl that arc-efe evaluate wrote")
    return [EvalTask.from_json(rec, k) for k, rec in enumerate(records, 1)]


def choose_tasks(tasks: list[EvalTask], limit: int) -> list[int]:
    """Indices of up to `limit` tasks to draw: wrong ones first (lowest score first), then
    tasks whose answers are unknown, then right ones; file order within each group."""
    def key(i: int) -> tuple:
        score = tasks[i].score
        group = 1 if score is None else (0 if score < 1 else 2)
        return group, score or 0.0, i
    return sorted(range(len(tasks)), key=key)[:limit]


_SYNTHETIC_ID = re.compile(r"-s(\d+)-(\d+)$")


def _same_tests(task: Task, rec: EvalTask) -> bool:
    """Whether the loaded task has the evaluated test inputs (their count and sizes)."""
    if rec.attempts and len(rec.attempts) != len(task.test):
        return False
    sizes = [list(p.input.shape) for p in task.test]
    return not rec.sizes or rec.sizes == sizes


class TaskLookup:
    """The tasks an evaluation was run on, loaded again from their sources (each source once)."""

    def __init__(self) -> None:
        self._sources: dict[tuple[str, str | None], dict[str, Task] | str] = {}

    def find(self, rec: EvalTask) -> tuple[Task | None, str]:
        """(task, "") or (None, why it could not be loaded)."""
        if not rec.source:
            return None, "eval.jsonl does not say which source the task came from"
        task, why = self._load(rec)
        if task is not None and not _same_tests(task, rec):
            return None, (f"task {rec.task_id} in {rec.source} does not match the evaluated one "
                          "(other test inputs)")
        return task, why

    def _load(self, rec: EvalTask) -> tuple[Task | None, str]:
        if is_synthetic(rec.source):  # generated tasks: the id holds the seed and the index
            m = _SYNTHETIC_ID.search(rec.task_id)
            if m is None:
                return None, f"{rec.task_id} is not a task id of {rec.source}"
            try:
                task = SyntheticSource(rec.source, int(m.group(1))).task(int(m.group(2)))
            except ArcEfeError as e:
                return None, str(e)
            return (task, "") if task.id == rec.task_id else (None, f"{rec.source} has no task {rec.task_id}")
        key = (rec.source, rec.solutions)
        if key not in self._sources:
            try:
                self._sources[key] = load_tasks(rec.source, rec.solutions, skip_invalid=True).by_id()
            except (ArcEfeError, OSError, ValueError) as e:
                self._sources[key] = f"could not load {rec.source}: {e}"
        tasks = self._sources[key]
        if isinstance(tasks, str):
            return None, tasks
        if rec.task_id not in tasks:
            return None, f"{rec.source} has no task {rec.task_id}"
        return tasks[rec.task_id], ""


# ---------------------------------------------------------------- HTML pieces

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
.meta, .note, figcaption { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
tr.wrong td.score { color: #b00; } tr.right td.score { color: #070; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; white-space: pre-wrap; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { flex: 1 1 520px; max-width: 640px; }
.plots img { width: 100%; height: auto; border: 1px solid #eee; }
.task { border-top: 1px solid #ccc; margin-top: 1.2em; }
.row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 1.2em 2em; margin: 0.6em 0; }
.pair { display: flex; align-items: flex-start; gap: 0.5em; }
.arrow { font-size: 1.4em; color: #888; align-self: center; }
figure { margin: 0; max-width: 16em; } svg.grid { display: block; border: 1px solid #555; }
.verdict-right { color: #070; font-weight: bold; } .verdict-wrong { color: #b00; font-weight: bold; }
.bad-grid { color: #b00; }
"""


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def _grid_figure(raw: Any, caption: str) -> str:
    """A grid with its caption and shape (a note instead when it is not a grid)."""
    grid = as_grid(raw)
    if grid is None:
        return _figure("", f'<span class="bad-grid">{_e(caption)}: not a grid</span>')
    return _figure(grid_svg(grid, label=caption), f"{_e(caption)} {shape_text(grid)}")


def _attempt_figure(raw: Any, expected: Any, name: str) -> str:
    """An attempt compared with the expected output: right, n cells wrong, or shape differs."""
    grid, want = as_grid(raw), as_grid(expected)
    label = name.replace("_", " ")
    if grid is None:
        return _figure("", f'<span class="bad-grid">{label}: missing or not a grid</span>')
    caption = f"{label} {shape_text(grid)}"
    if want is not None:
        wrong = wrong_cells(grid, want)
        if wrong is None:
            caption += (f': <span class="verdict-wrong">wrong shape</span> '
                        f"({shape_text(grid)}, expected {shape_text(want)})")
        elif wrong:
            cells = "cell" if len(wrong) == 1 else "cells"
            caption += f': <span class="verdict-wrong">{len(wrong)} {cells} wrong</span> (crossed out)'
        else:
            caption += ': <span class="verdict-right">right</span>'
    return _figure(grid_svg(raw, want, label=label), caption)


def _score_text(rec: EvalTask) -> str:
    if rec.score is None:
        return "answers unknown"
    right = sum(c is True for c in rec.correct)
    return f"{right}/{len(rec.correct)} ({rec.score:.0%})"


def _task_section(k: int, rec: EvalTask, lookup: TaskLookup) -> str:
    """One drawn task: demonstrations, then per test output the input, expected and attempts."""
    task, why = lookup.find(rec)
    out = [f'<article class="task" id="task-{k}"><h3>task {_e(rec.task_id)}: {_score_text(rec)}</h3>',
           f'<p class="meta">source {_e(rec.source or "unknown")}'
           + (f", {rec.seconds:.1f} s" if rec.seconds is not None else "") + "</p>"]
    if task is None:
        out.append(f'<p class="note">The task could not be loaded ({_e(why)}): only the attempts '
                   "are drawn, without the demonstrations and the expected output.</p>")
    else:
        out.append(f"<h4>Demonstrations ({len(task.train)})</h4>")
        out.append('<div class="row">' + "".join(
            f'<div class="pair">{_grid_figure(pair.input, f"input {i + 1}")}<span class="arrow">&rarr;</span>'
            f'{_grid_figure(pair.output, f"output {i + 1}")}</div>' for i, pair in enumerate(task.train))
            + "</div>")
    for j, entry in enumerate(rec.attempts):
        entry = entry if isinstance(entry, dict) else {}
        pair = task.test[j] if task is not None else None
        expected = pair.output if pair is not None else None
        out.append(f"<h4>Test {j + 1}{_test_note(rec, j)}</h4>")
        figures = []
        if pair is not None:
            figures.append(_grid_figure(pair.input, "test input"))
            figures.append(_grid_figure(expected, "expected output") if expected is not None
                           else _figure("", "expected output unknown"))
        figures += [_attempt_figure(entry.get(name), expected, name) for name in ATTEMPTS]
        out.append('<div class="row">' + "".join(figures) + "</div>")
    return "\n".join(out) + "</article>"


def _test_note(rec: EvalTask, j: int) -> str:
    """': right, candidate score 0.12' from the per-output lists, when present."""
    parts = []
    if rec.correct is not None and j < len(rec.correct):
        parts.append("right" if rec.correct[j] is True else "wrong")
    if j < len(rec.candidates) and isinstance(rec.candidates[j], int):
        parts.append(f"{rec.candidates[j]} candidates")
    if j < len(rec.scores) and isinstance(rec.scores[j], (int, float)):
        parts.append(f"chosen candidate's score {rec.scores[j]:.4g}")
    return ": " + ", ".join(parts) if parts else ""


def _task_table(tasks: list[EvalTask], drawn: dict[int, int]) -> str:
    rows = ["<table><tr><th>task</th><th>score</th><th>source</th><th>seconds</th></tr>"]
    for i, rec in enumerate(tasks):
        name = _e(rec.task_id)
        if i in drawn:
            name = f'<a href="#task-{drawn[i]}">{name}</a>'
        status = "unknown" if rec.score is None else ("right" if rec.score == 1 else "wrong")
        seconds = f"{rec.seconds:.1f}" if rec.seconds is not None else ""
        rows.append(f'<tr class="{status}"><td>{name}</td><td class="score">{_score_text(rec)}</td>'
                    f"<td>{_e(rec.source or '')}</td><td>{seconds}</td></tr>")
    return "\n".join(rows) + "</table>"


def evaluation_section(eval_path: Path | None, max_tasks: int) -> str:
    if eval_path is None:
        return ("<p>No evaluation found (no eval/eval.jsonl in the run folder). Evaluate the run "
                "with <code>arc-efe evaluate --checkpoint RUN_DIR --data SOURCE --output-dir "
                "RUN_DIR/eval</code>, or pass <code>--eval PATH</code>.</p>")
    tasks = read_eval(eval_path)
    if not tasks:
        return f"<p>{_e(eval_path)} holds no tasks.</p>"
    scored = [t.score for t in tasks if t.score is not None]
    summary = (f"mean score {sum(scored) / len(scored):.1%} over {len(scored)} tasks with known answers, "
               f"{sum(s == 1 for s in scored)} fully solved" if scored else "answers unknown: not scored")
    chosen = choose_tasks(tasks, max_tasks)
    drawn = {i: k for k, i in enumerate(chosen)}
    lookup = TaskLookup()
    return "\n".join([f'<p>{_e(eval_path)}: {len(tasks)} tasks; {summary}. Drawn below: '
                      f"{len(chosen)} (wrong ones first; --max-tasks changes how many).</p>",
                      _task_table(tasks, drawn)]
                     + [_task_section(k, tasks[i], lookup) for k, i in enumerate(chosen)])


def settings_table(config: dict) -> str:
    keys = [k for k in KEY_SETTINGS if k in config] + [k for k in config if k not in KEY_SETTINGS]
    rows = [f"<tr><th>{_e(k)}</th><td>{_e(json.dumps(config[k]))}</td></tr>" for k in keys]
    return "<table>" + "".join(rows) + "</table>" if rows else "<p>config.json is empty.</p>"


def plots_section(config: dict, records: list[dict]) -> str:
    parts = []
    for missing, plot in training_plots(config, records):
        if plot is None:
            parts.append(f'<p class="note">{_e(missing)}</p>')
            continue
        note = f"<figcaption>{_e(plot.note)}</figcaption>" if plot.note else ""
        parts.append(f'<figure><img src="data:image/png;base64,{plot.png}" alt="{_e(plot.title)}" '
                     f'width="640" height="320">{note}</figure>')
    return '<div class="plots">' + "".join(parts) + "</div>"


# ---------------------------------------------------------------- the page

def build_report(run_dir: Path, config: dict, records: list[dict], eval_path: Path | None,
                 max_tasks: int = DEFAULT_MAX_TASKS) -> str:
    """The whole page as a string, from the run's settings and metrics records."""
    diagnosis = render(diagnose(config, records), header=f"Diagnosis of {run_dir}")
    title = f"Run report: {run_dir.name}"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">run folder {_e(run_dir)}; {len(records)} metrics records; '
        f"written {datetime.now():%Y-%m-%d %H:%M}</p>",
        '<nav><a href="#curves">Curves</a><a href="#diagnosis">Diagnosis</a>'
        '<a href="#evaluation">Evaluation</a><a href="#settings">Settings</a></nav>',
        '<section id="curves"><h2>Training curves</h2>', plots_section(config, records), "</section>",
        f'<section id="diagnosis"><h2>Diagnosis</h2><pre>{_e(diagnosis)}</pre></section>',
        '<section id="evaluation"><h2>Evaluation</h2>', evaluation_section(eval_path, max_tasks),
        "</section>",
        '<section id="settings"><h2>Settings (config.json)</h2>', settings_table(config), "</section>",
        "</body></html>", ""])


def write_report(run_dir: str | Path, eval_arg: str | Path | None = None,
                 output: str | Path | None = None, max_tasks: int = DEFAULT_MAX_TASKS) -> Path:
    """Write the report (atomically) and return its path: RUN_DIR/report.html unless `output`."""
    run_dir = Path(run_dir)
    if max_tasks < 0:
        raise ArcEfeError(f"--max-tasks must be >= 0, got {max_tasks}")
    config, records = open_run(run_dir)
    page = build_report(run_dir, config, records, find_eval(run_dir, eval_arg), max_tasks)
    path = Path(output) if output is not None else run_dir / REPORT_FILE
    atomic_write_text(path, page)
    return path
