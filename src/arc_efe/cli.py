"""The `arc-efe` command line.

Errors caused by input (bad files, unknown sources) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import ArcEfeError

EXIT_BAD_INPUT = 2


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="embedded set (e.g. arc-agi-1/training), task file, challenges file or folder")
    p.add_argument("--solutions", default=None,
                   help="solutions file for a challenges file (default: *_solutions.json beside it)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="leave out invalid tasks (listed with their reasons) instead of stopping")


def _add_colour_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-color", action="store_true", help="print digits instead of coloured cells")
    p.add_argument("--color", action="store_true", help="colour even when not writing to a terminal")


def cmd_data_validate(args: argparse.Namespace) -> int:
    from .data.sources import load_tasks

    res = load_tasks(args.source, args.solutions, args.skip_invalid)
    tasks = res.tasks
    grids = [g for t in tasks for p in (*t.train, *t.test) for g in (p.input, p.output) if g is not None]
    print(f"{res.name}: {len(tasks)} tasks valid")
    print(f"  demonstration pairs: {sum(len(t.train) for t in tasks)}")
    print(f"  test inputs: {sum(len(t.test) for t in tasks)}")
    print(f"  test outputs: {sum(p.output is not None for t in tasks for p in t.test)} known")
    if grids:
        rows = [g.shape[0] for g in grids]
        cols = [g.shape[1] for g in grids]
        print(f"  grid sizes: rows {min(rows)}..{max(rows)}, columns {min(cols)}..{max(cols)}")
    if res.skipped:
        print(f"  skipped {len(res.skipped)} invalid tasks:")
        for s in res.skipped:
            print(f"    {s.reason}")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from .data.sources import load_tasks
    from .reporting.display import render_task

    if args.source == "synthetic" or args.source.startswith("synthetic/"):
        from .data.synthetic import SyntheticSource
        task = SyntheticSource(args.source, args.seed).task(int(args.task_id or 0))
        print(render_task(task, colour=args.color or (sys.stdout.isatty() and not args.no_color)))
        return 0
    tasks = load_tasks(args.source, args.solutions, args.skip_invalid).by_id()
    if args.task_id is None:
        raise ArcEfeError(f"{args.source}: name a task id to show, e.g. {next(iter(tasks))}")
    if args.task_id not in tasks:
        near = sorted(t for t in tasks if t.startswith(args.task_id[:2]))[:5]
        hint = f"; similar ids: {', '.join(near)}" if near else ""
        raise ArcEfeError(f"{args.source}: no task {args.task_id} ({len(tasks)} tasks){hint}")
    colour = args.color or (sys.stdout.isatty() and not args.no_color)
    print(render_task(tasks[args.task_id], colour=colour))
    return 0


def cmd_data_list_families(args: argparse.Namespace) -> int:
    from .data.synthetic import FAMILIES

    for kind in sorted({f.kind for f in FAMILIES.values()}):
        print(f"{kind}:")
        for f in sorted((f for f in FAMILIES.values() if f.kind == kind), key=lambda f: f.name):
            print(f"  {f.name:<28} {f.summary}")
    print(f"{len(FAMILIES)} families; use them as --data synthetic or synthetic/<family>")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from .data.files import atomic_write_json
    from .data.sources import load_tasks

    res = load_tasks(args.source, args.solutions, args.skip_invalid)
    out = Path(args.out)
    if args.kaggle:
        if not out.name.endswith("_challenges.json"):
            raise ArcEfeError(f"{out}: with --kaggle the file name must end in _challenges.json")
        atomic_write_json(out, {t.id: t.to_json(with_answers=False) for t in res.tasks})
        sol = out.with_name(out.name[: -len("_challenges.json")] + "_solutions.json")
        atomic_write_json(sol, {t.id: [p.output.tolist() for p in t.test] for t in res.tasks
                                if t.has_answers})
        print(f"wrote {len(res.tasks)} tasks to {out} and their answers to {sol}")
    else:
        atomic_write_json(out, {t.id: t.to_json() for t in res.tasks})
        print(f"wrote {len(res.tasks)} tasks to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .inference.evaluate import evaluate

    return evaluate(args)


def cmd_solve(args: argparse.Namespace) -> int:
    from .inference.evaluate import solve

    return solve(args)


def cmd_merge(args: argparse.Namespace) -> int:
    from .inference.evaluate import merge

    return merge(args)


def cmd_bank(args: argparse.Namespace) -> int:
    from .inference.evaluate import build_bank

    return build_bank(args)


def cmd_score(args: argparse.Namespace) -> int:
    from .data.scoring import dumps_report, read_submission, report_lines, score_submission
    from .data.sources import load_tasks

    submission = read_submission(args.submission)
    tasks = load_tasks(args.data, args.solutions, args.skip_invalid).tasks
    report = score_submission(submission, tasks)
    if not report.tasks:
        raise ArcEfeError(f"{args.data}: no task with known answers to score against")
    if args.json:
        print(dumps_report(report))
    else:
        print("\n".join(report_lines(report, per_task=not args.quiet)))
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .reporting.diagnosis import diagnose
    from .reporting.findings import render
    from .reporting.runlog import open_run

    config, records = open_run(args.run_dir)
    print(render(diagnose(config, records), header=f"Diagnosis of {args.run_dir}"), end="")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .saved.modelfolder import export_model

    spec = export_model(args.source, args.folder)
    print(f"wrote {args.folder}: {spec.model_name}, {spec.positions} positions, max_len {spec.max_len} "
          f"(checksums in {Path(args.folder) / 'manifest.json'})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .reporting.report import write_report

    print(f"report: {write_report(args.run_dir, args.eval, args.output, args.max_tasks)}")
    return 0


# Settings a resumed run may change; the others are the run's and stay as saved.
RESUME_OVERRIDES = ("epochs", "max_batches", "device", "save_every_steps", "keep_checkpoints", "nan_rollback",
                    "rollback_lr_factor", "max_rollbacks", "tensorboard")


def config_for_resume(run_dir: Path, args: argparse.Namespace):
    """The saved config of a run, with the RESUME_OVERRIDES given on the command line; any
    other setting given is named as ignored (the run goes on as it was set up)."""
    from dataclasses import fields

    from .saved.config import TrainConfig, read_run_config

    cfg = read_run_config(run_dir)
    defaults = TrainConfig()
    ignored = []
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is None or value == getattr(defaults, f.name) or f.name in ("weights", "preset", "mode"):
            continue
        if f.name in RESUME_OVERRIDES:
            setattr(cfg, f.name, value)
        elif value != getattr(cfg, f.name):
            ignored.append("--" + f.name.replace("_", "-"))
    if ignored:
        print(f"note: resuming {run_dir} with its saved settings; ignored: {', '.join(ignored)}", file=sys.stderr)
    preset, cfg.preset = cfg.preset, None  # its values are in the saved settings already
    cfg.__post_init__()  # the changed settings are checked like new ones
    cfg.preset = preset
    return cfg


def train_main(argv: Sequence[str] | None = None, prog: str = "arc-efe train") -> int:
    """`arc-efe train` and the root script `trainloop_gpu_finetuned.py`."""
    from .training.flags import add_train_args, config_from_args
    from .training.stopping import TrainingStopped
    from .training.run import train

    parser = argparse.ArgumentParser(prog=prog, description="Train an ARC solver on a Qwen backbone "
                                     "with the EFE objective; prints a report after every epoch.")
    add_train_args(parser)
    args = parser.parse_args(argv)
    if args.resume_checkpoint and not args.resume:
        parser.error("--resume-checkpoint needs --resume RUN_DIR")
    try:
        cfg = config_for_resume(Path(args.resume), args) if args.resume else config_from_args(args)
        train(cfg, resume=args.resume, resume_checkpoint=args.resume_checkpoint)
    except ArcEfeError as e:  # bad input or a bad setting: one line, no traceback
        if not getattr(e, "quiet", False):  # under torchrun, rank 0 speaks for a shared failure
            print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingStopped as e:  # SIGINT/SIGTERM: a checkpoint was written
        if e.main:
            print(str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C twice: no new checkpoint
        print("\ninterrupted at once (second Ctrl-C): no new checkpoint; --resume RUN_DIR continues from "
              "the last one", file=sys.stderr)
        return 128 + signal.SIGINT
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arc-efe", description="Train and evaluate ARC-AGI solvers on a Qwen backbone.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train a solver (see arc-efe train --help)", add_help=False)

    data = sub.add_parser("data", help="validate, show or export ARC data")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("validate", help="check every task of a source and print counts")
    _add_source_args(p)
    p.set_defaults(func=cmd_data_validate)
    p = dsub.add_parser("show", help="draw one task in the terminal")
    _add_source_args(p)
    p.add_argument("task_id", nargs="?", default=None,
                   help="task id; for synthetic sources the task number (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of a synthetic source")
    _add_colour_args(p)
    p.set_defaults(func=cmd_data_show)
    p = dsub.add_parser("list-families", help="list the generated task families")
    p.set_defaults(func=cmd_data_list_families)
    p = dsub.add_parser("export", help="write a source as one task-dictionary JSON file")
    _add_source_args(p)
    p.add_argument("out", help="output file, e.g. training.json")
    p.add_argument("--kaggle", action="store_true",
                   help="write X_challenges.json without answers and X_solutions.json beside it")
    p.set_defaults(func=cmd_data_export)

    from .inference.evaluate import add_inference_args, add_model_args

    p = sub.add_parser("evaluate", help="answer a source's test inputs, write submission.json, score it")
    p.add_argument("--data", required=True, help="any source: embedded set, file, folder, synthetic[/family]")
    add_model_args(p)
    p.add_argument("--max-tasks", type=int, default=None)
    p.add_argument("--task-ids", nargs="+", default=None)
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="evaluate tasks I, I+N, ... only (1 <= I <= N); combine with arc-efe merge")
    p.add_argument("--solutions", default=None)
    p.add_argument("--skip-invalid", action="store_true")
    p.add_argument("--output-dir", default="eval", help="where submission.json and eval.jsonl go")
    p.add_argument("--no-progress", action="store_true", help="no progress line on standard error")
    p.add_argument("--resume", action="store_true",
                   help="go on with an evaluation that was stopped: the tasks already in OUTPUT_DIR/eval.partial.jsonl "
                        "are kept, the others answered (the settings must be the same)")
    add_inference_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("solve", help="answer one task file (no answers needed) and draw the two attempts")
    p.add_argument("task_file", help="a task JSON file {train: [...], test: [...]} (or any source)")
    add_model_args(p)
    _add_colour_args(p)
    add_inference_args(p)
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("merge", help="combine the submission.json files of evaluation shards")
    p.add_argument("out", help="the merged submission.json")
    p.add_argument("shards", nargs="+", help="shard submission files, or their output folders")
    p.add_argument("--data", default=None, help="score the merged submission against this source")
    p.add_argument("--solutions", default=None)
    p.add_argument("--skip-invalid", action="store_true")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("bank", help="fill a Solver2 memory bank (for evaluate --memory) with the training-task "
                                    "test outputs that evaluations got right")
    p.add_argument("evaluations", nargs="+", metavar="EVAL_DIR",
                   help="output folders of arc-efe evaluate on training tasks (or folders of their shard_N/)")
    p.add_argument("--output", required=True, metavar="BANK_DIR", help="where memory.json and memory.safetensors go")
    add_model_args(p)
    p.set_defaults(func=cmd_bank)

    p = sub.add_parser("score", help="score a Kaggle submission.json with the official pass@2 rule")
    p.add_argument("submission", help="submission.json: {task_id: [{attempt_1, attempt_2}, ...]}")
    p.add_argument("--data", required=True, help="the tasks with their answers (any source)")
    p.add_argument("--solutions", default=None, help="solutions file when --data is a challenges file")
    p.add_argument("--skip-invalid", action="store_true", help="leave out invalid tasks")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="print only the total, not each task")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("diagnose", help="say in plain words how a training run is going and what to try")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (finished, still running or crashed)")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("report", help="write an HTML page of a run: curves, diagnosis, evaluated tasks as grids")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (finished, still running or crashed)")
    p.add_argument("--eval", default=None, metavar="PATH",
                   help="eval.jsonl of arc-efe evaluate, or its folder (default: RUN_DIR/eval/ when there)")
    p.add_argument("--output", default=None, metavar="FILE", help="where the page goes (default: RUN_DIR/report.html)")
    p.add_argument("--max-tasks", type=int, default=10,
                   help="evaluated tasks drawn as grids, wrong ones first; raise it to see more (the page grows)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="write a model folder (weights, config, checksums) from a training run, "
                                      "for evaluate --checkpoint and train --init")
    p.add_argument("source", help="a training run in full mode (its latest checkpoint) or one of its checkpoints")
    p.add_argument("folder", help="the model folder to write, e.g. models/my-model (replaced atomically; "
                                  "a README.md model card already there is kept)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # training has its own parser (the users' flags)
        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ArcEfeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
