"""JSON from files that users hand us, read with limits.

`json.loads` alone would accept a 2 GB file, recurse until Python's stack runs out on
`[[[[...`, silently keep the last of two values under the same key (the same task id twice
in one file), and stop with Python's own advice on a 5,000-digit number. `read_json` refuses
each of these with one line that names the file and, where it is known, the line and column:

- files over `MAX_FILE_BYTES` are refused from their size, before a byte is read;
- nesting deeper than `MAX_JSON_DEPTH` is found by counting brackets *before* parsing;
- a key named twice in one object is an error naming the key and where the object is, or,
  for task files where one bad task must not cost the others, is marked with a
  `DuplicateKeys` value for the caller to report.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError, SourceError

# Far above any ARC set (ARC-AGI-2 training: 4 MB compact, 23 MB indented with json's indent=2).
MAX_FILE_BYTES = 256 * 1024 * 1024
# ARC layouts need 6 levels ({id: {"train": [{"input": [[cell]]}]}}); submissions and configs fewer.
MAX_JSON_DEPTH = 32

# A JSON string (escapes included); DOTALL so that an escaped line break cannot end it early.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# What `_blank_strings` hides inside strings: what the depth count and the digit search look for.
_HIDDEN = bytes.maketrans(b"[]{}0123456789", b" " * 14)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 1 << 22  # brackets counted at a time


class JSONLimitError(ValueError):
    """JSON that breaks one of the limits; `offset` is the byte where, when known."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.offset = offset


class DuplicateKeys:
    """Stands for a JSON object that names a key more than once (read with keep_duplicates).

    It is deliberately not a dict, so that code which does not expect it fails instead of
    using one of the two values; `pairs` holds every (key, value) in file order.
    """

    def __init__(self, pairs: list[tuple[str, Any]], key: str):
        self.pairs = pairs
        self.key = key  # the first key named twice

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{json.dumps(k)}: {v!r}" for k, v in self.pairs) + "}"


def read_json(path: Path, name: str, error: Callable[[str], Exception] = DataError,
              keep_duplicates: bool = False) -> Any:
    """Parse the JSON file at `path` with the limits above; `name` starts every message.

    Content problems raise `error` (DataError for tasks, SubmissionError, ConfigError, ...);
    a file that cannot be read at all raises SourceError.
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise SourceError(f"{name}: cannot read: {e.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise error(f"{name}: file is {size:,} bytes, more than the {MAX_FILE_BYTES // 2**20} MiB "
                    "accepted for a JSON file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(f"{name}: cannot read: {e.strerror}") from None
    try:
        return loads(data, keep_duplicates)
    except UnicodeDecodeError as e:
        raise error(f"{name}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise error(f"{name}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except JSONLimitError as e:
        raise error(f"{name}: {e}{line_column(data, e.offset)}") from None


def loads(data: bytes, keep_duplicates: bool = False) -> Any:
    """`json.loads` after the depth check, with duplicate keys refused (or marked).

    Raises UnicodeDecodeError, json.JSONDecodeError or JSONLimitError.
    """
    check_depth(data)
    text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not an error
    marked: list[DuplicateKeys] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any] | DuplicateKeys:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked.append(DuplicateKeys(pairs, _first_repeat(pairs)))
        return marked[-1]

    try:
        value = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError:
        raise
    except ValueError as e:
        if "integer string conversion" not in str(e):
            raise
        # Python refuses to read integers this long (a guard against slow conversion).
        digits = sys.get_int_max_str_digits()
        found = re.search(rb"\d{%d}" % (digits + 1), _blank_strings(data))
        raise JSONLimitError(f"a number has more than {digits} digits",
                             found.start() if found else None) from None
    if marked and not keep_duplicates:
        path = _path_to(value, marked[0])
        where = f"the object at {path}" if path else "the top-level object"
        raise JSONLimitError(f"the key {marked[0].key!r} appears twice in {where} (a JSON reader "
                             "keeps only the last value); remove or rename one")
    return value


def check_depth(data: bytes) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH, without parsing it.

    Brackets inside strings do not count. The cost is a few percent of `json.loads`: strings
    are dropped by one regular-expression pass, `bytes.translate` keeps the brackets alone and
    numpy sums them; only when the limit is passed are the strings blanked in place instead,
    to find the line and column.
    """
    brackets = _STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_JSON_DEPTH:
        return  # too few to nest that deep (a short metrics line, say)
    codes = np.frombuffer(brackets, dtype=np.uint8)
    depth = 0
    for start in range(0, len(codes), _CHUNK):  # in slices: bounded memory on a huge file
        chunk = codes[start:start + _CHUNK]
        levels = depth + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1))
        over = np.flatnonzero(levels > MAX_JSON_DEPTH)
        if over.size:
            raise JSONLimitError(f"nested deeper than {MAX_JSON_DEPTH} levels",
                                 _nth_bracket(data, start + int(over[0])))
        depth = int(levels[-1])


def _nth_bracket(data: bytes, n: int) -> int:
    """Byte offset of the n-th (from 0) bracket outside strings."""
    codes = np.frombuffer(_blank_strings(data), dtype=np.uint8)
    return int(np.flatnonzero(np.isin(codes, np.frombuffer(b"[]{}", dtype=np.uint8)))[n])


def line_column(data: bytes, offset: int | None) -> str:
    """' at line L column C' for a byte offset (columns count bytes), '' when unknown."""
    if offset is None:
        return ""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - data.rfind(b"\n", 0, offset)
    return f" at line {line} column {column}"


def _blank_strings(data: bytes) -> bytes:
    """`data` with brackets and digits inside strings made spaces; byte offsets do not move."""
    return _STRING.sub(lambda m: m.group().translate(_HIDDEN), data)


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("unreachable: called only when a key repeats")  # pragma: no cover


def _path_to(value: Any, target: DuplicateKeys, path: str = "") -> str | None:
    """Where `target` sits inside `value`, as `007bbfb7.train[2]` ("" at the top); error path only."""
    if value is target:
        return path
    if isinstance(value, DuplicateKeys):
        children: Any = value.pairs
    elif isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    for key, child in children:
        if isinstance(child, (dict, list, DuplicateKeys)):
            step = f"[{key}]" if isinstance(key, int) else (f".{key}" if path else key)
            found = _path_to(child, target, path + step)
            if found is not None:
                return found
    return None
