"""Stop requests: SIGINT (Ctrl-C) and SIGTERM (a scheduler, `kill`, torchrun) end training
cleanly: the current step finishes, a checkpoint is written, and the run can go on with
`--resume RUN_DIR`. A second Ctrl-C stops at once (the last checkpoint is then the one used).

The handler only records the signal: printing or saving inside a signal handler could
interrupt a write in progress (the progress bar writes to the same stream).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import torch

from ..model import distributed as dist


class TrainingStopped(Exception):
    """Training ended on a signal after writing a checkpoint; `exit_code` is 128 + signal."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None, run_dir: Path, main: bool = True):
        name = signal.Signals(signum).name
        saved = (f"checkpoint {checkpoint.name} written" if checkpoint is not None
                 else "no checkpoint written (see the message above)")
        super().__init__(f"stopped by {name} after step {step}: {saved}; continue with --resume {run_dir}")
        self.exit_code = 128 + signum
        self.main = main  # rank 0 wrote the checkpoint and says so; the other ranks stay quiet


class StopRequests:
    """Context manager: while inside, SIGINT and SIGTERM set `signum` instead of killing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum

    def agreed(self, device: torch.device) -> int | None:
        """The signal asking to stop, agreed by every rank (under torchrun each rank receives
        its own, maybe a step apart); printed once."""
        signum = self.signum
        if dist.world_size() > 1:
            asked = dist.sum_floats([float(signum is not None)], device)[0]
            signum = (signum or signal.SIGTERM) if asked else None
        if signum:
            dist.print0(f"\n{signal.Signals(signum).name} received: writing a checkpoint, then stopping")
        return signum

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
