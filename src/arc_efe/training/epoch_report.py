"""What training tells the user: the epoch record and report after each epoch, and the HTML run
report at the end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..reporting.diagnosis import diagnose, write_diagnosis
from ..reporting.runlog import load_run
from .evaluation import ICL_SIDE, exact_accuracy, icl_queries, pass_at_2


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


def validate(run, epoch: int) -> tuple[tuple[int, int], float | None, int, tuple[int, int]]:
    """((right, total) on training queries, validation pass@2 or None, validation tasks,
    (right, total) in context on the fixed fresh generated tasks)."""
    right, total = exact_accuracy(run.agent, run.eval_queries, run.cfg.max_len)
    val, n_val = None, 0
    if run.val_queries and (epoch + 1) % run.cfg.val_frequency == 0:
        report = pass_at_2(run.agent, run.val_queries, run.cfg.max_len)
        val, n_val = report.score, len(report.tasks)
    icl = (0, 0)
    if run.cfg.icl_tasks:
        icl = exact_accuracy(run.agent, icl_queries(run.cfg.icl_tasks), run.cfg.max_len, ICL_SIDE)
    return (right, total), val, n_val, icl


def end_of_epoch(run, epoch: int, t_start: float) -> None:
    """Rank 0: accuracy, the epoch record and the report in the users' words."""
    (right, total), val, n_val, (icl_right, icl_total) = validate(run, epoch)
    state = run.state
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    record = {"kind": "epoch", "epoch": epoch + 1, "train_loss": mean(state.losses),
              "components": {k: mean(v) for k, v in state.components.items()},
              "train_accuracy": right / max(total, 1), "val_accuracy": val,
              "icl_accuracy": icl_right / icl_total if icl_total else None,
              "icl_right": icl_right, "icl_total": icl_total,
              "batch_accuracy": state.grids_right / state.grids if state.grids else None,
              "batch_right": state.grids_right, "batch_total": state.grids,
              "memory_adds": run.writer.adds if run.writer else 0,
              "memory_queries": run.writer.queries if run.writer else 0,
              "memory_known": run.writer.known if run.writer else 0,
              "memory_size": len(run.bank) if run.bank is not None else 0,
              "memory_retrieved": state.retrieved, "nan_skipped": state.nan_skipped,
              "rollbacks": state.rollbacks, "lr_scale": state.lr_scale,
              "seconds": time.time() - run.t_epoch}
    run.log.log(record)
    print_epoch_report(run.run_dir, run.cfg.epochs, run.bank is not None, record, right, total, n_val,
                       time.time() - t_start)
