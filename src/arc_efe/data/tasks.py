"""ARC tasks and their validation.

A `Task` holds demonstration pairs (`train`) and test pairs (`test`); a `Pair` holds an
input grid and, when known, its output grid. Grids are 2-D `uint8` numpy arrays with
1..30 rows and columns and colours 0..9.

Everything read from a file passes through `parse_task`, which checks the whole task and
raises one `DataError` naming the file, the task and the field of the first problem, e.g.
`training.json: task 007bbfb7, train[2].output row 3 has 4 cells, row 0 has 3`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from .jsonfile import DuplicateKeys

MAX_SIDE = 30
NUM_COLOURS = 10
# Far above any real ARC task (ARC-AGI-2 has at most 10 demonstrations and 4 tests);
# a task with more is almost certainly a malformed file, and refusing it keeps memory bounded.
MAX_TRAIN_PAIRS = 64
MAX_TEST_PAIRS = 16
# Longest value quoted in an error message: a megabyte-long string cell must not make the line.
MAX_SHOWN = 40

Grid = np.ndarray


@dataclass(frozen=True, eq=False)
class Pair:
    input: Grid
    output: Grid | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"input": self.input.tolist()}
        if self.output is not None:
            d["output"] = self.output.tolist()
        return d


@dataclass(frozen=True, eq=False)
class Task:
    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]
    source: str = ""

    @property
    def has_answers(self) -> bool:
        return all(p.output is not None for p in self.test)

    def to_json(self, with_answers: bool = True) -> dict[str, Any]:
        test = [p.to_json() if with_answers else {"input": p.input.tolist()} for p in self.test]
        return {"train": [p.to_json() for p in self.train], "test": test}

    def replace(self, **changes: Any) -> "Task":
        fields = {"id": self.id, "train": self.train, "test": self.test, "source": self.source}
        fields.update(changes)
        return Task(**fields)


def grids_equal(a: Grid | None, b: Grid | None) -> bool:
    """Exact match: same shape and every cell equal."""
    if a is None or b is None:
        return False
    return a.shape == b.shape and bool(np.array_equal(a, b))


def answer_shape(demos: Sequence[Pair], test_input: Grid) -> tuple[int, int] | None:
    """The answer's (height, width) when every demonstration agrees on it: each output has
    its input's shape, each has the transposed shape, or all outputs share one shape; else
    None. (The commonest size rules of ARC, taken only when no demonstration contradicts them.)"""
    shown = [(p.input.shape, p.output.shape) for p in demos if p.output is not None]
    if not shown:
        return None
    h, w = test_input.shape
    if all(o == i for i, o in shown):
        return h, w
    if all(o == i[::-1] for i, o in shown):
        return w, h
    if len({o for _, o in shown}) == 1:
        return tuple(shown[0][1])
    return None


def make_grid(rows: Any) -> Grid:
    """Build a grid from Python lists (or an array) without location info; for code and tests."""
    return parse_grid(rows, "grid")


def parse_grid(value: Any, place: str) -> Grid:
    """Validate one grid given as a list of rows; `place` prefixes every error message."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list):
        raise DataError(f"{place} is {json_kind(value)}, not a list of rows")
    if not value:
        raise DataError(f"{place} has no rows")
    if len(value) > MAX_SIDE:
        raise DataError(f"{place} has {len(value)} rows, at most {MAX_SIDE} allowed")
    for i, row in enumerate(value):
        if not isinstance(row, list):
            raise DataError(f"{place} row {i} is {json_kind(row)}, not a list of cells")
    width = len(value[0])
    if width == 0:
        raise DataError(f"{place} row 0 is empty")
    if width > MAX_SIDE:
        raise DataError(f"{place} row 0 has {width} cells, at most {MAX_SIDE} allowed")
    for i, row in enumerate(value):
        if len(row) != width:
            raise DataError(f"{place} row {i} has {len(row)} cells, row 0 has {width}")
    # Fast path: every cell a plain int (bool excluded) and in range. Anything else falls
    # through to the cell-by-cell check that names the first bad cell.
    cell_types: set[type] = set()
    for row in value:
        cell_types.update(map(type, row))
    if cell_types == {int}:
        try:
            arr = np.asarray(value, dtype=np.int64)
        except OverflowError:  # a cell past 64 bits: left to the check below, which names it
            arr = None
        if arr is not None and arr.min() >= 0 and arr.max() < NUM_COLOURS:
            return arr.astype(np.uint8)
    for i, row in enumerate(value):
        for j, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, int):
                raise DataError(f"{place} row {i} col {j} is {shown(cell)}, not an integer colour")
            if not 0 <= cell < NUM_COLOURS:
                raise DataError(f"{place} row {i} col {j} is colour {shown(cell)}, colours are 0-9")
    raise AssertionError("unreachable: grid passed every check but the fast path")  # pragma: no cover


def parse_task(raw: Any, file: str, task_id: str) -> Task:
    """Validate one task object `{"train": [...], "test": [...]}` read from `file`."""
    where = f"{file}: task {task_id}"
    if isinstance(raw, DuplicateKeys):
        raise DataError(f"{where} has the key {raw.key!r} twice; keep one")
    if not isinstance(raw, dict):
        raise DataError(f"{where} is {json_kind(raw)}, not an object with 'train' and 'test'")
    pairs = {}
    for split, limit in (("train", MAX_TRAIN_PAIRS), ("test", MAX_TEST_PAIRS)):
        if split not in raw:
            raise DataError(f"{where} has no '{split}' key")
        items = raw[split]
        if not isinstance(items, list):
            raise DataError(f"{where}, '{split}' is {json_kind(items)}, not a list of pairs")
        if not items:
            raise DataError(f"{where}, '{split}' is empty: at least one pair is needed")
        if len(items) > limit:
            raise DataError(f"{where}, '{split}' has {len(items)} pairs, at most {limit} allowed")
        pairs[split] = tuple(
            _parse_pair(item, f"{where}, {split}[{k}]", output_required=(split == "train"))
            for k, item in enumerate(items)
        )
    return Task(id=task_id, train=pairs["train"], test=pairs["test"], source=file)


def _parse_pair(raw: Any, place: str, output_required: bool) -> Pair:
    if isinstance(raw, DuplicateKeys):
        raise DataError(f"{place} has the key {raw.key!r} twice; keep one")
    if not isinstance(raw, dict):
        raise DataError(f"{place} is {json_kind(raw)}, not an object with 'input' and 'output'")
    if "input" not in raw:
        raise DataError(f"{place} has no 'input' key")
    grid_in = parse_grid(raw["input"], f"{place}.input")
    if "output" not in raw:
        if output_required:
            raise DataError(f"{place} has no 'output' key")
        return Pair(grid_in, None)
    return Pair(grid_in, parse_grid(raw["output"], f"{place}.output"))


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words: "null", "a list", "an object", ..."""
    if value is None:
        return "null"
    names = {dict: "an object", DuplicateKeys: "an object", list: "a list", str: "a string",
             bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def shown(value: Any) -> str:
    """A value for an error message as the JSON file spells it ("3", true, null, NaN), cut
    to MAX_SHOWN characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):  # not plain JSON data (a DuplicateKeys, say)
        text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."
