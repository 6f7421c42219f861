"""A training run as the reports read it: `config.json` (the resolved settings) and
`metrics.jsonl`, one JSON object a line:

    {"kind": "step", "step", "epoch", "loss", "components": {...}, "lr", "grad_norm", "tokens_per_s"}
    {"kind": "epoch", "epoch", "train_loss", "train_accuracy", "batch_accuracy", "val_accuracy", "icl_accuracy",
     "memory_adds", "memory_queries", "memory_size", "nan_skipped", "components": {...}}

`load_run` reads both, from a finished run, a running one or a crashed one (a truncated last
line is skipped); `open_run` does the same for commands pointed at a run folder by hand;
`metric_value` reads one number of a line, NaN and inf included.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..data.files import read_jsonl
from ..data.jsonfile import read_json
from ..data.tasks import json_kind
from ..errors import ArcEfeError, ConfigError

COMPONENTS = ("risk", "ambiguity", "consistency", "bidirectional", "step")

# How `metrics.MetricsLog` writes non-finite values (JSON has no literal for them).
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf,
               "infinity": math.inf, "-infinity": -math.inf}


def metric_value(x: Any) -> float | None:
    """A number from a metrics field, or None when absent / not a number.

    NaN and inf are kept, whether written as JSON numbers or as the strings "nan", "inf",
    "-inf" that the training log uses.
    """
    if isinstance(x, str):
        return _NON_FINITE.get(x.strip().lower())
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def load_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """(config, records) of a run folder. A truncated last metrics line (crashed run) is skipped."""
    run_dir = Path(run_dir)
    config: dict = {}
    config_path = run_dir / "config.json"
    if config_path.is_file():
        config = read_json(config_path, str(config_path), error=ConfigError)
        if not isinstance(config, dict):
            raise ConfigError(f"{config_path}: top level is {json_kind(config)}, expected an object of settings")
    records = read_jsonl(run_dir / "metrics.jsonl", "is this a training run folder?")
    return config, records


def open_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """Like `load_run`, for commands pointed at a run folder by hand (`arc-efe diagnose`,
    `arc-efe report`): the folder and its config.json must exist too."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArcEfeError(f"{run_dir}: no such run folder (training prints it last, as 'run folder: ...')")
    if not (run_dir / "config.json").is_file():
        raise ArcEfeError(f"{run_dir / 'config.json'}: no such file (is this a training run folder?)")
    return load_run(run_dir)
