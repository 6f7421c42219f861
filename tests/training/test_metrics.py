import json

import pytest

from arc_efe.errors import ArcEfeError
from arc_efe.training.metrics import MetricsLog


def _lines(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_truncate_after_drops_later_records_and_a_cut_off_last_line(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for s in range(1, 5):
        log.log({"kind": "step", "step": s, "epoch": 1, "loss": float(s)})
    log.log({"kind": "epoch", "epoch": 1, "train_loss": 2.5})
    with open(log.path, "a") as f:
        f.write('{"kind": "step", "ste')  # a crash mid-write
    log.truncate_after(step=2, epochs_done=0)
    assert [(r["kind"], r.get("step")) for r in _lines(log.path)] == [("step", 1), ("step", 2)]


def test_truncate_after_reports_a_corrupt_middle_line(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    log.log({"kind": "step", "step": 1, "loss": 1.0})
    with open(log.path, "a") as f:
        f.write("garbage\n")
    log.log({"kind": "step", "step": 2, "loss": 1.0})
    with pytest.raises(ArcEfeError, match="metrics.jsonl: line 2"):
        log.truncate_after(step=1, epochs_done=0)
