"""Where training writes its numbers: `metrics.jsonl` and, when installed, TensorBoard.

TensorBoard is optional: without it a do-nothing writer stands in, so the training loop
never asks whether it is there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..data.files import atomic_write_text
from ..reporting.runlog import load_run


class NullWriter:
    def add_scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class NullLog:
    """The log of a rank other than 0: under torchrun only rank 0 writes."""

    def log(self, record: dict[str, Any]) -> None:
        pass

    def truncate_after(self, step: int, epochs_done: int) -> None:
        pass

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def tensorboard_writer(run_dir: Path, enabled: bool):
    if not enabled:
        return NullWriter()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("TensorBoard is not installed: metrics go to metrics.jsonl only")
        return NullWriter()
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan", "inf": JSON has no literal for them
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return v


class MetricsLog:
    """Appends one JSON object per line and mirrors scalars to TensorBoard.

    An append log is not rewritten per line (that would cost O(lines) each step): each line is
    written whole and flushed, `sync` puts them on disk before every checkpoint, a line cut
    off by a crash is dropped on reading, and a resumed run rewrites the file atomically up to
    its checkpoint (`truncate_after`): no line of a completed step is lost or duplicated.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        self.writer = tensorboard_writer(run_dir, tensorboard)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_json_safe(record)) + "\n")
            f.flush()
        step = record.get("step", record.get("epoch", 0))
        prefix = record["kind"]
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
            elif isinstance(value, dict):
                for sub, v in value.items():
                    if isinstance(v, (int, float)):
                        self.writer.add_scalar(f"{prefix}/{key}/{sub}", v, step)

    def truncate_after(self, step: int, epochs_done: int) -> None:
        """Drop records a resumed run will write again (after the checkpoint it resumes from).

        A cut-off last line (the crash being resumed from) goes too; a corrupt line anywhere
        else is an error naming its line, as in `runlog.load_run`.
        """
        if not self.path.exists():
            return
        _, records = load_run(self.path.parent)
        kept = [r for r in records
                if not (r.get("kind") != "epoch" and r.get("step", 0) > step)  # steps, rollbacks
                and not (r.get("kind") == "epoch" and r.get("epoch", 0) > epochs_done)]
        atomic_write_text(self.path, "".join(json.dumps(_json_safe(r)) + "\n" for r in kept))

    def sync(self) -> None:
        """Put every line written so far on disk (called before each checkpoint)."""
        if self.path.exists():
            with open(self.path, "rb") as f:
                os.fsync(f.fileno())

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()

