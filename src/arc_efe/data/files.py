"""Atomic file writes: write beside the target, flush to disk, then rename over it.

A reader (or a resumed run) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Remove the partial temporary file, then let the error reach the caller.
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_jsonl(path: str | Path, missing_hint: str) -> list[dict]:
    """The JSON objects of a JSON-lines file, one a line (blank lines ignored).

    A last line that does not parse is skipped: it was cut off mid-write (the writer crashed or
    is writing it now). A bad line anywhere else is an error naming the file and the line; so is
    a missing file, with `missing_hint` saying what was expected.
    """
    from ..errors import ArcEfeError
    from .jsonfile import JSONLimitError, loads

    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise ArcEfeError(f"{path}: no such file ({missing_hint})") from None
    except OSError as e:
        raise ArcEfeError(f"{path}: cannot read ({e.strerror or e})") from None
    numbered = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    records = []
    for k, (lineno, line) in enumerate(numbered):
        data = line.encode("utf-8")
        try:
            rec = loads(data)  # with the depth and number limits of task files
        except json.JSONDecodeError as e:
            if k == len(numbered) - 1:
                break   # the last line was cut off mid-write
            raise ArcEfeError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
        except JSONLimitError as e:
            where = "" if e.offset is None else f" at column {e.offset + 1}"
            raise ArcEfeError(f"{path}: line {lineno}: {e}{where}") from None
        if not isinstance(rec, dict):
            raise ArcEfeError(f"{path}: line {lineno}: expected a JSON object, got {type(rec).__name__}")
        records.append(rec)
    return records


def read_safetensors(path: str | Path, what: str) -> dict:
    """Tensors of a safetensors file (no code runs on load); errors name the file and `what`."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from ..errors import ArcEfeError

    try:
        return load(Path(path).read_bytes())
    except OSError as e:
        raise ArcEfeError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    except (SafetensorError, ValueError) as e:
        raise ArcEfeError(f"{path}: not a safetensors {what} ({e})") from None
