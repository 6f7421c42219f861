"""What training tells the user: the report after each epoch (its record is built by
`Trainer.end_epoch`), and the HTML run report at the end."""

from __future__ import annotations

import sys
from pathlib import Path

from ..reporting.diagnosis import diagnose, write_diagnosis
from ..reporting.runlog import load_run


def report_after_training(run_dir: Path) -> Path | None:
    """Write the run's HTML report and print its path (None when it could not be written).

    The run is finished and saved by now: a failure here is a printed warning with the command
    to retry, never an error that turns a good run into a failed one.
    """
    try:
        from ..reporting.report import write_report
        path = write_report(run_dir)
    except Exception as e:  # noqa: BLE001 - a plotting bug or a full disk must not fail the run
        print(f"warning: could not write the run report ({type(e).__name__}: {e}); the run is "
              f"saved, retry with: arc-efe report {run_dir}", file=sys.stderr)
        return None
    print(f"report: {path}")
    return path


def print_epoch_report(run_dir: Path, epochs: int, memory_on: bool, rec: dict, right: int, total: int,
                       n_val: int, elapsed: float) -> None:
    """The report printed after each epoch (the users' layout), with the diagnosis's headline;
    the full diagnosis goes to RUN_DIR/diagnosis.txt."""
    comps = ", ".join(f"{k} {v:.4f}" for k, v in rec["components"].items())
    val = ("not measured" if rec["val_accuracy"] is None
           else f"{rec['val_accuracy'] * 100:.2f}% (pass@2 over {n_val} tasks)")
    print(f"\nEpoch {rec['epoch']}/{epochs}")
    print(f"  Loss: {rec['train_loss']:.4f}  ({comps})")
    if not memory_on:
        print("  Memory bank updates: 0/0 (memory off: --no-memory)")
    else:
        known = (f"; {rec['memory_known']} solved again, already stored" if rec.get("memory_known") else "")
        print(f"  Memory bank updates: {rec['memory_adds']}/{rec['memory_queries']} "
              f"(bank holds {rec['memory_size']} verified solutions{known}; "
              f"{rec['memory_retrieved']} queries retrieved from it)")
    seen = rec.get("batch_total") or 0
    if seen:  # the users' figure: every grid the epoch trained on, then the fixed queries after it
        print(f"  Training Accuracy: {rec['batch_accuracy'] * 100:.2f}% ({rec['batch_right']}/{seen} grids correct "
              f"in this epoch's batches; {right}/{total} fixed training queries after it)")
    else:
        print(f"  Training Accuracy: {rec['train_accuracy'] * 100:.2f}% ({right}/{total} grids correct)")
    print(f"  Validation Accuracy: {val}")
    if rec.get("icl_total"):
        print(f"  In-context Accuracy: {rec['icl_accuracy'] * 100:.2f}% ({rec['icl_right']}/{rec['icl_total']} "
              "fresh generated tasks, no test-time training)")
    rolled = (f" (rolled back {rec['rollbacks']} time(s) so far; learning rate x{rec['lr_scale']:g})"
              if rec.get("rollbacks") else "")
    print(f"  NaN/inf steps skipped: {rec['nan_skipped']}{rolled}")
    print(f"  Elapsed: {elapsed:.0f}s")
    config, records = load_run(run_dir)
    write_diagnosis(run_dir, config, records)
    worst = [f for f in diagnose(config, records) if f.severity in ("problem", "warning")]
    summary = "; ".join(f.title for f in worst[:3]) if worst else "no problems found"
    print(f"  Diagnosis: {summary} (details: {run_dir / 'diagnosis.txt'})")
