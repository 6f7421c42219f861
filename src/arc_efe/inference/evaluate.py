"""`arc-efe evaluate`, `arc-efe solve` and `arc-efe merge`: answer tasks, write, score.

`evaluate` runs the inference pipeline (`pipeline.solve_task`: views, optional test-time
training, depth-first or greedy decoding, product-of-experts selection with votes) on every
task of a source, or on one shard of it (`--shard i/n`, tasks i, i+n, ... counted from 1),
and writes

- `submission.json` (Kaggle format), scored with the official pass@2 rule when the answers
  are known;
- `eval.jsonl`, one line per task: task_id, source, solutions, seconds, sizes (test input
  shapes), candidates (per test output), attempts, correct (null when unknown), scores (the
  chosen candidate's selection score), efe / risk / ambiguity of the chosen candidate, and
  the test-time training summary;

and prints a per-task table while it runs, with a progress line (tasks done, solved so far,
time left) on standard error, and at the end how many tasks got no candidate from the model
and why, and how many had demonstrations dropped to fit `--max-context`. Each task's line is
also appended to `eval.partial.jsonl` as soon as it is answered (flushed to disk), so a long
run that is stopped goes on with `--resume` (same settings; the folder's `eval.settings.json`
is checked) and answers only the tasks not yet done. `merge` combines the submissions of several shards. `solve`
does the same as evaluate on one task file and draws the two attempts.

The model is the shipped pretrained `models/arc-efe-tiny` unless `--checkpoint` names a model
folder, a trained run (its latest checkpoint) or one checkpoint; `--checkpoint fresh` (or
`--model-name`) is an untrained backbone, which only makes sense with test-time training,
which then learns each task from scratch. The first line printed names the model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from ..data.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl, read_safetensors
from ..data.scoring import make_entry, read_submission, report_lines, score_submission, write_submission
from ..data.sequences import Example
from ..data.sources import load_tasks
from ..data.tasks import Task, grids_equal
from ..data.tokens import IN
from ..errors import ArcEfeError, SubmissionError
from ..model import distributed as dist
from ..model.policy import Policy
from ..model.backbone import BackboneConfig, load_backbone, load_trainable
from ..model.positions import DEFAULT_POSITIONS, POSITIONS
from ..reporting.display import side_by_side
from ..saved.checkpoint import find_checkpoint
from ..saved.config import load_run_backbone, read_run_config
from ..saved.modelfolder import FRESH, is_model_folder, read_model_folder, shipped_model
from ..solver2.memory import MemoryBank
from ..solver2.recall import Recall, bank_from_evaluations
from ..solver2.retrieval import Solver2, task_keys
from .pipeline import MAX_CONTEXT, VIEW_KINDS, InferenceConfig, MemoryFn, TaskResult, solve_task
from .ttt import TTT_VIEWS, TestTimeTrainer, TTTConfig

# Test-time training when neither --ttt-steps nor --ttt-seconds is given: a wall-clock budget
# on a CPU (chosen by benchmarks/single_rules.py and ttt_scratch.py, see the README), steps on
# an accelerator, where a step takes milliseconds.
CPU_TTT_SECONDS = 20.0
AUTO = "auto"
GPU_TTT_STEPS = 64
TTT_STEP_CAP = 100_000  # steps when only a budget in seconds is given


def load_policy(run_dir: Path | None, model_name: str, device: torch.device, positions: str = DEFAULT_POSITIONS):
    """(policy, solver2, bank, max_len) of a run's latest checkpoint or one checkpoint folder,
    of a model folder (modelfolder.py), or a fresh backbone when `run_dir` is None."""
    if run_dir is None:
        backbone = load_backbone(BackboneConfig(model_name=model_name, positions=positions), device, torch.float32)
        return Policy(backbone).eval(), None, None, 2048
    if is_model_folder(run_dir):
        spec = read_model_folder(run_dir)  # verified against its manifest
        backbone = load_backbone(BackboneConfig(model_name=spec.model_name, positions=spec.positions,
                                                init=spec.weights), device, torch.float32)
        return Policy(backbone).eval(), None, None, spec.max_len
    chosen = None
    if run_dir.parent.name == "checkpoints":  # a checkpoint folder of a run: that one, not the latest
        run_dir, chosen = run_dir.parent.parent, run_dir.name
    cfg = read_run_config(run_dir)
    ckpt = find_checkpoint(run_dir, chosen)  # verified against its manifest
    backbone = load_run_backbone(cfg, device)
    load_trainable(backbone, ckpt / "model.safetensors")
    solver2 = bank = None
    if (ckpt / "memory.json").exists() and (ckpt / "solver2.safetensors").exists():
        hidden = backbone.get_input_embeddings().embedding_dim
        solver2 = Solver2(hidden, top_k=cfg.memory_top_k).to(device)
        solver2.load_state_dict(read_safetensors(ckpt / "solver2.safetensors", "Solver2 checkpoint"))
        bank = MemoryBank.load(ckpt)
    return Policy(backbone).eval(), solver2, bank, cfg.max_len


def memory_function(policy: Policy, solver2: Solver2 | None, bank: MemoryBank | None) -> MemoryFn | None:
    """Solver2's readout for a batch of prompts, or None without a (non-empty) bank."""
    if solver2 is None or bank is None or not len(bank):
        return None

    @torch.no_grad()
    def readout(prompts):
        device = next(policy.backbone.parameters()).device
        examples = [Example(list(p), len(p), 0, context_end=len(p) - 1 - p[::-1].index(IN)) for p in prompts]
        return solver2.readout(bank, task_keys(policy.backbone, examples, device))[0]

    return readout


# --- arguments ------------------------------------------------------------------------
def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="the model: a model folder such as models/arc-efe-tiny (the default), a training "
                        "run (its latest checkpoint), one checkpoint folder RUN_DIR/checkpoints/step_NNNNNNN, "
                        f"or '{FRESH}' for an untrained backbone that learns each task from scratch by "
                        "test-time training")
    p.add_argument("--model-name", default=None,
                   help="an untrained backbone of this preset (tiny unless given): implies --checkpoint fresh")
    p.add_argument("--positions", choices=POSITIONS, default=DEFAULT_POSITIONS,
                   help="grid positions of an untrained backbone (a trained model keeps its own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the views, test-time training and synthetic tasks")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def add_inference_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inference")
    g.add_argument("--views", type=int, default=8,
                   help="views per test input (dihedral x colours x demo order); 1 = the task as it is")
    g.add_argument("--answer-views", choices=(AUTO, *VIEW_KINDS), default=AUTO,
                   help="which views answer: all (each orientation, colours and order at random) or rule "
                        "(orientation kept, only colours the rule does not touch permuted: for a model "
                        "that learns each task by test-time training with --ttt-views rule). "
                        "auto (default): rule for an untrained backbone, all for a trained model")
    g.add_argument("--no-shape-rule", dest="shape_rule", action="store_false",
                   help="decode answers of any size; by default, when every demonstration's output has its "
                        "input's shape (or the transposed one, or one shape for all), the answer must have it too")
    g.add_argument("--decoder", choices=("dfs", "greedy"), default="dfs",
                   help="dfs keeps every answer above --min-prob; greedy one per view (fastest)")
    g.add_argument("--min-prob", type=float, default=0.1,
                   help="depth-first decoding keeps answers at least this probable; lower it for more candidates")
    g.add_argument("--max-candidates", type=int, default=8, help="candidates kept per view")
    g.add_argument("--vote-weight", type=float, default=1.0,
                   help="weight of ln(votes) beside the product of experts; 0 = likelihood only")
    g.add_argument("--max-side", type=int, default=30,
                   help="largest answer side decoded; lower it for quick runs on small tasks")
    g.add_argument("--max-context", type=int, default=MAX_CONTEXT,
                   help="tokens of a prompt with its answer, in answering and test-time training: each task "
                        "gets the length it needs up to this; past it demonstrations are dropped, longest first "
                        "(counted per task). Lower it to answer large tasks faster")
    g = p.add_argument_group("test-time training (per task, then discarded)")
    g.add_argument("--ttt-steps", type=int, default=None,
                   help=f"optimizer steps per task; 0 = off (fastest; a fresh backbone then answers at random). "
                        f"Default: {GPU_TTT_STEPS} on a GPU; on a CPU a budget of --ttt-seconds")
    g.add_argument("--ttt-lr", type=float, default=1e-3)
    g.add_argument("--ttt-rank", type=int, default=16, help="LoRA rank when the adapter is LoRA")
    g.add_argument("--ttt-mode", choices=("auto", "full", "lora"), default="auto",
                   help="auto: all weights for small backbones (<= 100M), a LoRA adapter above")
    g.add_argument("--ttt-batch", type=int, default=8, help="sequences per test-time step")
    g.add_argument("--ttt-tokens", type=int, default=8192,
                   help="tokens per test-time step: fewer than --ttt-batch sequences on large tasks, so a step of "
                        "a 30x30 task costs seconds rather than a minute on a CPU")
    g.add_argument("--ttt-seconds", type=float, default=None,
                   help=f"wall-clock budget of test-time training per task (default on a CPU: {CPU_TTT_SECONDS:g}, "
                        "so a slow machine stays predictable; answering takes a few seconds more)")
    g.add_argument("--joint-seconds", type=float, default=0.0,
                   help="before answering, train on the demonstrations of all the tasks being answered together "
                        "(never a test output) for this many seconds; each task's own test-time training then "
                        "starts from there. The weights are kept in OUTPUT_DIR/joint.safetensors for --resume")
    g.add_argument("--joint-steps", type=int, default=TTT_STEP_CAP,
                   help="at most this many joint training steps (with --joint-seconds)")
    g.add_argument("--memory", default=None, metavar="PATH",
                   help="Solver2's memory of solved training tasks: a bank folder (memory.json), a training "
                        "run (its final bank) or one checkpoint. Each task's test-time training also draws "
                        "--memory-share of its sequences from up to --memory-k stored tasks: of the "
                        "--memory-search nearest to it by key, those that pass the check (--memory-gain). "
                        "Entries of evaluation tasks and of the tasks being answered are left out")
    # None: TTTConfig's defaults (and a resumed evaluation from before these flags keeps its settings)
    g.add_argument("--memory-k", type=int, default=None,
                   help=f"stored tasks recalled per task (with --memory; default {TTTConfig.recall_k})")
    g.add_argument("--memory-share", type=float, default=None,
                   help="share of test-time training sequences drawn from the recalled tasks (with --memory; "
                        f"default {TTTConfig.recall_share})")
    g.add_argument("--memory-search", type=int, default=None,
                   help=f"stored tasks nearest by key that are checked (with --memory; default "
                        f"{TTTConfig.recall_search})")
    g.add_argument("--memory-gain", type=_gain, default=None, metavar="G|off",
                   help="a checked stored task is trained on when its pairs, put before the task's own "
                        "demonstrations, lower the model's loss on each of them (leave-one-out), on average "
                        f"by at least G (with --memory; default {TTTConfig.recall_gain}); off: no check, the "
                        "--memory-k nearest by key")
    g.add_argument("--ttt-views", choices=(AUTO, *TTT_VIEWS), default=AUTO,
                   help="what varies between test-time training sequences: all (dihedral x colours x "
                        "demonstration order), geometry (no colour permutation), colours (no dihedral "
                        "transform), order (demonstration order only), rule (the colours the rule does "
                        "not seem to touch are permuted). auto (default): rule for an untrained backbone, "
                        "which cannot read a rule in context and so must keep one rule in every view; "
                        "all for a trained model")


def _gain(text: str) -> float | str:
    """--memory-gain: a number >= 0, or "off"."""
    if text == "off":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or off, got {text!r}")
    return value


def ttt_budget(steps: int | None, seconds: float | None, device: torch.device) -> tuple[int, float | None]:
    """(steps, seconds) of test-time training: what was given, else a seconds budget on a CPU
    and a fixed number of steps on an accelerator."""
    if steps is None and seconds is None:
        return (TTT_STEP_CAP, CPU_TTT_SECONDS) if device.type == "cpu" else (GPU_TTT_STEPS, None)
    return (TTT_STEP_CAP if steps is None else steps), seconds


def view_kinds(args: argparse.Namespace, fresh: bool) -> tuple[str, str]:
    """(test-time training views, answer views), `auto` resolved: an untrained backbone learns
    one rule per task and answers in its frame ("rule"); a trained one every view ("all")."""
    default = "rule" if fresh else "all"
    return (default if args.ttt_views == AUTO else args.ttt_views,
            default if args.answer_views == AUTO else args.answer_views)


def configs_from_args(args: argparse.Namespace, max_len: int, device: torch.device = torch.device("cpu"),
                      fresh: bool = False) -> tuple[InferenceConfig, TTTConfig]:
    """Inference and test-time training settings; `fresh`: the model is an untrained backbone.
    `max_len` is the context of a prompt with its answer (`--max-context`)."""
    steps, seconds = ttt_budget(args.ttt_steps, args.ttt_seconds, device)
    ttt_views, answer_views = view_kinds(args, fresh)
    try:
        inf = InferenceConfig(views=args.views, view_kind=answer_views, decoder=args.decoder, min_prob=args.min_prob,
                              max_candidates=args.max_candidates, vote_weight=args.vote_weight,
                              max_side=args.max_side, max_len=max_len, seed=args.seed,
                              shape_rule=args.shape_rule)
        ttt = TTTConfig(steps=steps, lr=args.ttt_lr, rank=args.ttt_rank, mode=args.ttt_mode,
                        batch=args.ttt_batch, seconds=seconds, max_len=max_len, seed=args.seed,
                        views=ttt_views, max_tokens=args.ttt_tokens,
                        **{k: v for k, v in (("recall_k", args.memory_k), ("recall_share", args.memory_share),
                                             ("recall_search", args.memory_search)) if v is not None},
                        **({} if args.memory_gain is None else
                           {"recall_gain": None if args.memory_gain == "off" else args.memory_gain}))
    except ValueError as e:
        raise ArcEfeError(str(e)) from None
    return inf, ttt


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n), 1 <= i <= n; None -> (1, 1)."""
    if text is None:
        return 1, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ArcEfeError(f"--shard {text!r}: expected i/n, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise ArcEfeError(f"--shard {text!r}: i must be between 1 and n")
    return i, n


# --- output ---------------------------------------------------------------------------
class Progress:
    """Tasks done, solved so far and time left, on standard error (one updating line on a
    terminal, a line per task otherwise)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.start = time.time()
        self.tty = sys.stderr.isatty()

    def update(self, done: int, solved: int, scored: int) -> None:
        if not self.enabled:
            return
        elapsed = time.time() - self.start
        left = elapsed / done * (self.total - done) if done else 0.0
        width = 24
        filled = int(width * done / max(self.total, 1))
        solved_text = f"{solved}/{scored} solved" if scored else "answers unknown"
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} tasks, {solved_text}, ~{left:.0f} s left"
        if self.tty:
            print("\r" + line, end="\n" if done == self.total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


TABLE_HEAD = (f"{'task':<18} {'size':>11} {'cands':>5} {'drop':>4} {'score':>9} {'efe':>6} {'result':>7} "
              f"{'sec':>6}")


def table_row(task: Task, result: TaskResult, correct: list[bool] | None) -> str:
    size = ",".join(f"{p.input.shape[0]}x{p.input.shape[1]}" for p in task.test)
    cands = "-" if any(o.fallback for o in result.outputs) else str(sum(len(o.candidates) for o in result.outputs))
    dropped = max((o.dropped for o in result.outputs), default=0)
    best = [o.candidates[0] for o in result.outputs if o.candidates]
    score = f"{best[0].score(1.0):9.2f}" if best else f"{'-':>9}"
    efe = f"{best[0].efe:6.3f}" if best and math.isfinite(best[0].efe) else f"{'-':>6}"
    if correct is None:
        verdict = "?"
    elif len(correct) == 1:
        verdict = "right" if correct[0] else "wrong"
    else:
        verdict = f"{sum(correct)}/{len(correct)}"
    return (f"{task.id[:18]:<18} {size[:11]:>11} {cands:>5} {dropped:>4} {score} {efe} {verdict:>7} "
            f"{result.seconds:6.1f}")


def _correct(task: Task, result: TaskResult) -> list[bool] | None:
    if not task.has_answers:
        return None
    return [any(grids_equal(a, p.output) for a in o.attempts) for o, p in zip(result.outputs, task.test)]


def eval_record(task: Task, result: TaskResult, source: str, solutions: str | None, vote_weight: float) -> dict:
    chosen = [o.candidates[0] if o.candidates else None for o in result.outputs]
    finite = lambda x: round(x, 4) if x is not None and math.isfinite(x) else None  # noqa: E731
    return {
        "task_id": task.id, "source": source, "solutions": solutions, "seconds": round(result.seconds, 3),
        "sizes": [list(p.input.shape) for p in task.test],
        "candidates": [0 if o.fallback else len(o.candidates) for o in result.outputs],
        "dropped": [o.dropped for o in result.outputs],  # demonstrations left out to fit --max-context
        "fallback": [o.fallback for o in result.outputs],  # why the model gave no candidate (None: it did)
        "attempts": [make_entry(o.attempts) for o in result.outputs],
        "correct": _correct(task, result),
        "scores": [finite(c.score(vote_weight)) if c else None for c in chosen],
        "efe": [finite(c.efe) if c else None for c in chosen],
        "risk": [finite(c.risk) if c else None for c in chosen],
        "ambiguity": [finite(c.ambiguity) if c else None for c in chosen],
        "votes": [c.votes if c else 0 for c in chosen],
        "ttt": {"steps": result.ttt.steps, "first_loss": finite(result.ttt.first_loss),
                "last_loss": finite(result.ttt.last_loss), "seconds": round(result.ttt.seconds, 3),
                **({"recalled": list(result.ttt.recalled)} if result.ttt.recalled else {}),
                **({"checked": list(result.ttt.checked)} if result.ttt.checked else {})},
    }


# --- commands -------------------------------------------------------------------------
def _select_tasks(args: argparse.Namespace) -> tuple[list[Task], list[Task]]:
    """(this shard's tasks, every task of the evaluation: what joint training learns from)."""
    tasks = load_tasks(args.data, args.solutions, args.skip_invalid, seed=args.seed,
                       count=args.max_tasks or 200).tasks
    if args.task_ids:
        wanted = set(args.task_ids)
        tasks = [t for t in tasks if t.id in wanted]
        missing = wanted - {t.id for t in tasks}
        if missing:
            raise ArcEfeError(f"{args.data}: no task {', '.join(sorted(missing))}")
    tasks = tasks[: args.max_tasks] if args.max_tasks else tasks
    i, n = parse_shard(args.shard)
    return tasks[i - 1::n], tasks


def model_path(args: argparse.Namespace) -> Path | None:
    """The model folder or run to answer with; None for an untrained backbone."""
    if args.checkpoint == FRESH or (args.checkpoint is None and args.model_name is not None):
        return None
    return Path(args.checkpoint) if args.checkpoint else shipped_model()


def model_line(args: argparse.Namespace, path: Path | None) -> str:
    """The first line evaluate and solve print: which model answers."""
    if path is None:
        return (f"model: an untrained {args.model_name or 'tiny'} backbone ({args.positions} positions): "
                "it learns each task from scratch by test-time training")
    if args.checkpoint is None:
        return (f"model: the shipped pretrained model {path} (its card: {path / 'README.md'}); "
                f"--checkpoint RUN_DIR for your own, --checkpoint {FRESH} for an untrained one")
    return f"model: {path}"


def load_recall(path: str | Path, policy: Policy, answering: Sequence[str], max_len: int) -> Recall:
    """Solver2's solved training tasks in the bank at `path` (a bank folder, a run or a
    checkpoint), keyed by `policy`, without any task of `answering` or of an evaluation set."""
    path, data = Path(path), None
    if (path / "memory" / "memory.json").is_file():  # a run: its final bank, and its --data
        folder, data = path / "memory", read_run_config(path).data
    elif (path / "memory.json").is_file():  # a bank folder, or a checkpoint of a run
        folder = path
        if path.parent.name == "checkpoints":
            data = read_run_config(path.parent.parent).data
    else:
        raise ArcEfeError(f"{path}: no memory bank here (memory.json) or in {path / 'memory'}")
    data = None if data is None or "+" in data else data  # a mix of sources does not say which one
    return Recall.from_bank(policy, MemoryBank.load(folder), answering, max_len, folder, data)


def _setup(args: argparse.Namespace, joint: bool = False, answering: Sequence[str] = ()):
    """(policy, inference settings, test-time trainer or None, memory function). `joint`: the
    trainer will also train on all the tasks together (`_joint_training`); `answering`: the
    ids of every task being answered (what --memory must never recall)."""
    device = dist.init(args.device)  # under torchrun: this rank's device
    torch.manual_seed(args.seed)
    run_dir = model_path(args)
    policy, solver2, bank, trained_len = load_policy(run_dir, args.model_name or "tiny", device, args.positions)
    dist.print0(model_line(args, run_dir), flush=True)  # once it has loaded: a bad model prints one error alone
    inf, ttt = configs_from_args(args, args.max_context, device, fresh=run_dir is None)
    if run_dir is not None and trained_len < inf.max_len:
        dist.print0(f"context: up to {inf.max_len} tokens per task (--max-context); the model trained on up to "
                    f"{trained_len}", flush=True)
    if run_dir is None and not ttt.enabled:
        dist.print0("note: a fresh, untrained backbone without test-time training (--ttt-steps) answers "
                    "at random", file=sys.stderr)
    recall = None
    if args.memory:
        recall = load_recall(args.memory, policy, answering, inf.max_len)
        chosen = (f"{ttt.recall_k} nearest" if ttt.recall_gain is None else
                  f"up to {ttt.recall_k} of its {ttt.recall_search} nearest that lower its leave-one-out loss "
                  f"by {ttt.recall_gain} or more")
        dist.print0(f"memory: {recall.summary()} from {args.memory}; each task also trains on its {chosen} "
                    f"({ttt.recall_share:.0%} of its test-time training sequences)", flush=True)
        if not ttt.enabled:
            dist.print0("note: --memory is used by test-time training, which is off (--ttt-steps 0)", file=sys.stderr)
    trainer = TestTimeTrainer(policy, ttt, joint=joint, recall=recall) if ttt.enabled or joint else None
    return policy, inf, trainer, memory_function(policy, solver2, bank)


JOINT = "joint.safetensors"


def _joint_training(args: argparse.Namespace, trainer: TestTimeTrainer, tasks: list[Task], out: Path) -> None:
    """Train on the demonstrations of all `tasks` together (`--joint-seconds`), or, with
    --resume, load the weights an earlier run of this evaluation saved in `out`."""
    saved = out / JOINT
    if args.resume and saved.is_file():
        try:
            trainer.load_joint_state(read_safetensors(saved, "joint training weights"))
        except ValueError as e:
            raise ArcEfeError(f"{saved}: {e}") from None
        dist.print0(f"joint training: the weights of {saved} (trained before this resume)", flush=True)
        return
    dist.print0(f"joint training on the demonstrations of {len(tasks)} tasks for up to {args.joint_seconds:g} s "
                f"(then the tasks are answered)", flush=True)
    stats = trainer.fit_jointly(tasks, args.joint_steps, args.joint_seconds)
    loss = "" if stats.first_loss is None else f", loss {stats.first_loss:.3f} -> {stats.last_loss:.3f}"
    dist.print0(f"joint training done: {stats.steps} steps in {stats.seconds:.0f} s{loss}", flush=True)
    if dist.is_main():
        from safetensors.torch import save

        atomic_write_bytes(saved, save(trainer.joint_state()))


def evaluate(args: argparse.Namespace) -> int:
    """Under torchrun each rank answers a shard of the tasks (as --shard RANK+1/WORLD) and
    rank 0 merges them into one submission, as `arc-efe merge` would."""
    if dist.launched():
        if args.shard:
            raise ArcEfeError("--shard and torchrun both split the tasks: use one of them")
        dist.init(args.device)
        args.shard = f"{dist.rank() + 1}/{dist.world_size()}"
    try:
        status = _evaluate(args)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()
    return status


# Settings that change answers: a resumed evaluation must keep them (eval.settings.json).
_RUN_ONLY = ("func", "command", "resume", "no_progress", "output_dir", "device")
PARTIAL = "eval.partial.jsonl"
SETTINGS = "eval.settings.json"


def _resume_records(args: argparse.Namespace, out: Path, tasks: list[Task]) -> dict[str, dict]:
    """The records of tasks already answered in `out` (with --resume), after checking that the
    settings are the same; writes the settings and a clean partial file for the run to append to."""
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in _RUN_ONLY and not callable(v)}
    partial = out / PARTIAL
    done: dict[str, dict] = {}
    if args.resume and (out / SETTINGS).is_file():
        from ..data.jsonfile import read_json

        saved = read_json(out / SETTINGS, str(out / SETTINGS))
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if changed:
            raise ArcEfeError(f"{out / SETTINGS}: --resume needs the same settings; these differ: "
                              + ", ".join(f"{k} (was {saved.get(k)!r}, now {settings.get(k)!r})" for k in changed))
        if partial.is_file():
            wanted = {t.id for t in tasks}
            done = {r["task_id"]: r for r in read_jsonl(partial, "") if r.get("task_id") in wanted}
    elif args.resume:
        print(f"note: nothing to resume in {out} (no {SETTINGS}): starting from the first task", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SETTINGS, settings, indent=1)
    atomic_write_text(partial, "".join(json.dumps(r) + "\n" for r in done.values()))  # drops a cut-off line
    return done


def _append_line(path: Path, rec: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def summary_lines(records: list[dict]) -> list[str]:
    """What a reader of a full evaluation checks first: tasks the model gave no candidate
    (and why), and tasks whose prompts lost demonstrations to the context length."""
    reasons: dict[str, int] = {}
    for r in records:
        for why in {w for w in r.get("fallback") or [] if w}:
            reasons[why] = reasons.get(why, 0) + 1
    empty = sum(1 for r in records if any(r.get("fallback") or []))
    why = "; ".join(f"{n}: {w}" for w, n in sorted(reasons.items()))
    lines = [f"tasks without a candidate from the model: {empty} of {len(records)}" + (f" ({why})" if why else "")]
    dropped = [max(r.get("dropped") or [0]) for r in records]
    lines.append(f"tasks with demonstrations dropped to fit --max-context: {sum(d > 0 for d in dropped)} "
                 f"({sum(dropped)} demonstrations in all)")
    return lines


def _evaluate(args: argparse.Namespace) -> int:
    print = dist.print0  # noqa: A001 - under torchrun only rank 0 prints
    tasks, every_task = _select_tasks(args)
    out = Path(args.output_dir)
    if args.resume and dist.world_size() > 1:
        raise ArcEfeError("--resume works for one process: give each shard its own --shard i/n and --output-dir")
    policy, inf, trainer, memory_fn = _setup(args, joint=args.joint_seconds > 0, answering=[t.id for t in every_task])
    done = _resume_records(args, out, tasks) if dist.world_size() == 1 else {}  # once the model has loaded
    if args.joint_seconds > 0:
        _joint_training(args, trainer, every_task, out)
    submission: dict[str, list] = {}
    records = []
    progress = Progress(len(tasks), not args.no_progress and dist.is_main())
    solved = scored = 0
    if done:
        print(f"resuming: {len(done)} of {len(tasks)} tasks already answered in {out / PARTIAL}")
    print(TABLE_HEAD)
    try:
        for n, task in enumerate(tasks, 1):
            if task.id in done:
                rec = done[task.id]
            else:
                result = solve_task(policy, task, inf, trainer, memory_fn)
                rec = eval_record(task, result, args.data, args.solutions, inf.vote_weight)
                if dist.world_size() == 1:
                    _append_line(out / PARTIAL, rec)
                print(table_row(task, result, rec["correct"]), flush=True)
            submission[task.id] = rec["attempts"]
            records.append(rec)
            if rec["correct"] is not None:
                scored += 1
                solved += all(rec["correct"])
            progress.update(n, solved, scored)
    finally:
        if trainer is not None:
            trainer.close()
    if dist.world_size() > 1:  # shards in task order: rank r holds tasks r, r + world, ...
        parts = dist.gather_lists([(submission, records, tasks)])
        if not dist.is_main():
            return 0
        order = []
        for k in range(max(len(ts) for _, _, ts in parts)):
            for sub, recs, ts in parts:
                if k < len(ts):
                    order.append((ts[k], sub[ts[k].id], recs[k]))
        tasks = [t for t, _, _ in order]
        submission = {t.id: entries for t, entries, _ in order}
        records = [r for _, _, r in order]
    out.mkdir(parents=True, exist_ok=True)
    write_submission(out / "submission.json", submission)
    atomic_write_text(out / "eval.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    (out / PARTIAL).unlink(missing_ok=True)
    print(f"wrote {out / 'submission.json'} ({len(submission)} tasks) and {out / 'eval.jsonl'}")
    print("\n".join(summary_lines(records)))
    answered = [t for t in tasks if t.has_answers]
    if answered:
        print("\n".join(report_lines(score_submission(submission, answered), per_task=False)))
    else:
        print("answers unknown: not scored (score later with arc-efe score)")
    return 0


def solve(args: argparse.Namespace) -> int:
    if args.joint_seconds > 0:
        raise ArcEfeError("--joint-seconds trains on all the tasks of an evaluation: use arc-efe evaluate")
    tasks = load_tasks(args.task_file, None, False).tasks
    policy, inf, trainer, memory_fn = _setup(args, answering=[t.id for t in tasks])
    colour = not args.no_color and (args.color or sys.stdout.isatty())
    try:
        for task in tasks:
            result = solve_task(policy, task, inf, trainer, memory_fn)
            correct = _correct(task, result)
            for k, (pair, o) in enumerate(zip(task.test, result.outputs)):
                grids = [pair.input, *o.attempts]
                titles = [f"{task.id} test[{k}] input", "attempt_1", "attempt_2"][: len(grids)]
                verdict = "" if correct is None else ("  (right)" if correct[k] else "  (wrong)")
                print(f"{task.id} test[{k}]: {len(o.candidates)} candidates, {result.seconds:.1f} s{verdict}")
                print(side_by_side(grids, titles, colour))
                print()
    finally:
        if trainer is not None:
            trainer.close()
    return 0


def merge(args: argparse.Namespace) -> int:
    """Combine shard submissions (files, or folders holding submission.json) into one.

    Every input is read before anything is written: a bad shard or --data leaves no output."""
    tasks = load_tasks(args.data, args.solutions, args.skip_invalid).tasks if args.data else None
    merged: dict[str, list] = {}
    origin: dict[str, str] = {}
    for name in args.shards:
        path = Path(name) / "submission.json" if Path(name).is_dir() else Path(name)
        for task_id, entries in read_submission(path).items():
            if task_id in merged and merged[task_id] != entries:
                raise SubmissionError(f"{path}: task {task_id} is also in {origin[task_id]} with other answers")
            merged[task_id], origin[task_id] = entries, str(path)
    write_submission(args.out, merged)
    print(f"wrote {args.out} ({len(merged)} tasks from {len(args.shards)} submissions)")
    if tasks is not None:
        print("\n".join(report_lines(score_submission(merged, [t for t in tasks if t.id in merged]), per_task=False)))
    return 0


RECORD_KEYS = ("task_id", "source", "attempts")  # what a task line is read for


def evaluation_records(folder: str | Path) -> list[dict]:
    """The task lines of an evaluation folder: its eval.jsonl when it finished, else what its
    eval.partial.jsonl holds so far; a folder of shards (shard_N/) gives those of each."""
    folder = Path(folder)
    for name in ("eval.jsonl", PARTIAL):
        if (folder / name).is_file():
            records = read_jsonl(folder / name, "")
            for n, r in enumerate(records, 1):
                missing = [k for k in RECORD_KEYS if k not in r]
                if missing:
                    raise ArcEfeError(f"{folder / name}: task line {n} has no {', '.join(missing)} (not a line "
                                      "of arc-efe evaluate)")
            return records
    shards = sorted(p for p in folder.glob("shard_*") if p.is_dir())
    if not shards:
        raise ArcEfeError(f"{folder}: no eval.jsonl or {PARTIAL} here or in shard_*/ (an output folder of "
                          "arc-efe evaluate)")
    return [r for shard in shards for r in evaluation_records(shard)]


def build_bank(args: argparse.Namespace) -> int:
    """Solver2's memory from evaluations of training tasks (`arc-efe bank`), for evaluate --memory."""
    records = [r for folder in args.evaluations for r in evaluation_records(folder)]
    device = dist.init(args.device)
    run_dir = model_path(args)
    policy, _, _, max_len = load_policy(run_dir, args.model_name or "tiny", device, args.positions)
    print(model_line(args, run_dir).replace("model:", "keys from:", 1), flush=True)
    bank, left_out = bank_from_evaluations(policy, records, max_len, ", ".join(args.evaluations))
    bank.save(args.output)
    tasks = len({m["task_id"] for m in bank.meta})
    print(f"wrote {args.output}: {len(bank)} solved test outputs of {tasks} tasks from {len(records)} task lines"
          + "".join(f"; left out {n}: {why}" for why, n in sorted(left_out.items())))
    return 0
