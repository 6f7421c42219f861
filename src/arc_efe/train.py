"""Training: setup() builds everything, fit() runs the loop, one phase after another.

Each optimizer step: set the learning rate; build the step's micro-batches (each query seen
through a random view, a second view for the consistency term, and its inverse task for the
bidirectional term); forward and backward each micro-batch with the loss normalised per
answer token over the whole step; clip; step (or skip a non-finite step); log; call the
step callbacks. Each epoch: training and validation accuracy, the report in the users'
words, the diagnosis, a checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .agent import Agent
from .backbone import BackboneConfig, backbone_parameters, head_parameters, load_backbone, trainable_summary
from .checkpoint import Position, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig, default_data
from .dataset import Query, make_queries, split_tasks
from .errors import ArcEfeError
from .device import autocast, default_dtype, resolve_device
from .diagnosis import diagnose, load_run, write_diagnosis
from .evaluation import exact_accuracy, pass_at_2
from .files import atomic_write_json
from .loss import COMPONENTS, EFELoss
from .metrics import MetricsLog
from .sequences import Example, aligned_cells, collate, forward_example, inverse_example
from .sources import load_tasks
from .tokens import SequenceTooLong, encode_task
from .views import View, random_view

LN_V = math.log(16)


@dataclass
class StepResult:
    """What a step saw, per query of its micro-batches: for Solver2's success rule."""
    step: int
    epoch: int
    queries: list[Query]
    views: list[View]
    risk: list[float]  # per-query risk of the forward view (normalised like the loss)
    cells_right: list[bool]  # every answer token argmax-right under teacher forcing


StepCallback = Callable[[StepResult], None]


@dataclass
class Run:
    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    dtype: torch.dtype
    agent: Agent
    loss_fn: EFELoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    queries: list[Query]
    eval_queries: list[Query]
    val_queries: list[Query]
    log: MetricsLog
    pos: Position
    steps_per_epoch: int
    history: list[dict] = field(default_factory=list)


def _fits(q: Query, max_len: int) -> bool:
    try:
        enc = encode_task(q.context, q.target.input, q.target.output, max_len)
    except SequenceTooLong:
        return False
    return enc.dropped < len(q.context) or not q.context


def _training_queries(tasks, max_len: int) -> list[Query]:
    """Leave-one-out queries from the demonstrations, plus test pairs whose answers are known."""
    queries = make_queries(tasks, "train")
    queries += [q for q in make_queries([t for t in tasks if t.has_answers], "test")]
    return [q for q in queries if _fits(q, max_len)]


def _micro_batches_per_epoch(cfg: TrainConfig, n_queries: int) -> int:
    n = math.ceil(n_queries / cfg.batch_size)
    return min(n, cfg.max_batches) if cfg.max_batches else n


def _param_groups(cfg: TrainConfig, agent: Agent, loss_fn: EFELoss) -> list[dict]:
    """backbone (--qwen-lr), agent head (--agent-lr), Solver2 (2x), loss parameters (0.5x).

    Weight decay applies to matrices only (norm scales and biases are left alone).
    """
    groups = []
    named = [("backbone", backbone_parameters(agent.backbone), cfg.backbone_lr),
             ("agent", head_parameters(agent.backbone), cfg.agent_lr),
             ("loss", [p for p in loss_fn.parameters() if p.requires_grad], cfg.agent_lr * 0.5)]
    for name, params, lr in named:
        for decay in (True, False):
            ps = [p for p in params if (p.ndim >= 2) == decay]
            if ps:
                groups.append({"params": ps, "lr": lr, "base_lr": lr, "name": name,
                               "weight_decay": cfg.weight_decay if decay else 0.0})
    return groups


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))  # cosine to 10%
    return f


def setup(cfg: TrainConfig, resume: str | Path | None = None) -> Run:
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    dtype = default_dtype(device)
    data = cfg.data or default_data()
    loaded = load_tasks(data, cfg.solutions, cfg.skip_invalid)
    for s in loaded.skipped:
        print(f"skipped: {s.reason}")
    fit_tasks, val_tasks = split_tasks(loaded.tasks, cfg.val_fraction, cfg.seed)
    queries = _training_queries(fit_tasks, cfg.max_len)
    if not queries:
        raise ArcEfeError(f"{data}: no training query fits --max-len {cfg.max_len}")
    rng = np.random.default_rng(cfg.seed)
    eval_idx = rng.permutation(len(queries))[: cfg.train_eval_queries]
    eval_queries = [queries[i] for i in sorted(eval_idx)]
    val_queries = [q for q in make_queries(val_tasks[: cfg.max_val_tasks], "test")
                   if q.target.output is not None]

    # Trained weights stay in float32 (bf16 autocast does the GPU math); weights that never
    # change (a frozen or LoRA base) are held in the compute dtype to halve their memory.
    weight_dtype = dtype if cfg.mode in ("frozen", "lora") else torch.float32
    backbone = load_backbone(BackboneConfig(model_name=cfg.model_name, mode=cfg.mode,
                                            lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha),
                             device, weight_dtype)
    for p in head_parameters(backbone):  # the head always learns: keep it in float32
        p.data = p.data.float()
    agent = Agent(backbone)
    loss_fn = EFELoss(**{f"{k}_weight": v for k, v in cfg.weights.items()},
                      label_smoothing=cfg.label_smoothing)
    optimizer = torch.optim.AdamW(_param_groups(cfg, agent, loss_fn), betas=(0.9, 0.95))
    n_micro = _micro_batches_per_epoch(cfg, len(queries))
    steps_per_epoch = math.ceil(n_micro / cfg.grad_accum_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(cfg.warmup_steps, steps_per_epoch * cfg.epochs))

    if resume is not None:
        run_dir = Path(resume)
    else:
        name = cfg.run_name or datetime.now().strftime("run_%Y%m%d_%H%M%S")
        run_dir = Path(cfg.output_dir) / name
        if (run_dir / "metrics.jsonl").exists():
            raise ArcEfeError(f"{run_dir} already holds a run: pass --resume {run_dir} to continue "
                              "it, or choose another --run-name")
        run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", {**cfg.to_dict(), "data": data}, indent=1)
    log = MetricsLog(run_dir, cfg.tensorboard)
    pos = Position(0, 0, 0, 0)
    if resume is not None:
        pos = load_checkpoint(latest_checkpoint(run_dir), agent.backbone, optimizer, scheduler)
        log.truncate_after(pos.step, pos.epochs_done)

    print(f"data: {data}: {len(fit_tasks)} training tasks ({len(queries)} queries), "
          f"{len(val_tasks)} validation tasks")
    print(f"model: {cfg.model_name} ({cfg.mode}) on {device}, {trainable_summary(backbone)}")
    if cfg.mode == "frozen":
        print("warning: the Qwen backbone is frozen: only the output head will learn "
              "(use --no-freeze-qwen to train it)")
    return Run(cfg, run_dir, device, dtype, agent, loss_fn, optimizer, scheduler, queries,
               eval_queries, val_queries, log, pos, steps_per_epoch)


def build_micro_batch(run: Run, epoch: int, b: int, order: np.ndarray):
    """Examples of micro-batch b of an epoch; views drawn from an RNG seeded by (seed, epoch, b)."""
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, epoch, b])
    idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
    queries = [run.queries[i] for i in idx]
    examples: list[Example] = []
    pairs: list[tuple[int, int]] = []
    views: list[View] = []
    first: list[int] = []
    want_second = cfg.augment and cfg.weights["consistency"] > 0
    for q in queries:
        n = len(q.context)
        view = random_view(rng, n) if cfg.augment else View()
        views.append(view)
        first.append(len(examples))
        examples.append(forward_example(q, view, cfg.max_len))
        if want_second:
            pairs.append((len(examples) - 1, len(examples)))
            examples.append(forward_example(q, random_view(rng, n), cfg.max_len))
        if cfg.weights["bidirectional"] > 0:
            try:
                examples.append(inverse_example(q, view, cfg.max_len))
            except SequenceTooLong:
                pass  # the inverse of this query does not fit; its forward terms still count
    return queries, views, examples, pairs, first


def _segments(offsets: list[int], examples: Sequence[Example], which: Sequence[int], device) -> torch.Tensor:
    return torch.cat([torch.arange(offsets[i], offsets[i] + examples[i].answer_len, device=device)
                      for i in which]) if which else torch.zeros(0, dtype=torch.long, device=device)


def train_step(run: Run, epoch: int, micro: list, step: int) -> tuple[dict, StepResult]:
    """Forward/backward every micro-batch of one optimizer step, then clip and step."""
    cfg, agent = run.cfg, run.agent
    counts = {"answer": 0, "consistency": 0, "inverse": 0}
    for _, _, examples, pairs, _ in micro:
        for e in examples:
            counts["answer" if e.cell_pos is not None else "inverse"] += e.answer_len
        counts["consistency"] += sum(len(examples[i].cell_pos) for i, _ in pairs)
    components = {name: 0.0 for name in COMPONENTS}
    loss_value, tokens = 0.0, 0
    result = StepResult(step, epoch, [], [], [], [])
    for queries, views, examples, pairs, first in micro:
        batch = collate(examples).to(run.device)
        tokens += batch.n_tokens
        with autocast(run.device, run.dtype):
            logits = agent.logits(batch.input_ids, batch.attention_mask)
        answer_logits = logits[batch.rows, batch.cols].float()
        fwd = [i for i, e in enumerate(examples) if e.cell_pos is not None]
        inv = [i for i, e in enumerate(examples) if e.cell_pos is None]
        f_idx = _segments(batch.offsets, examples, fwd, run.device)
        i_idx = _segments(batch.offsets, examples, inv, run.device)
        out = run.loss_fn(answer_logits[f_idx], batch.targets[f_idx],
                          consistency=aligned_cells(answer_logits, batch.offsets, examples, pairs),
                          inverse=(answer_logits[i_idx], batch.targets[i_idx]), counts=counts)
        out.total.backward()
        loss_value += float(out.total.detach())
        for name, v in out.components.items():
            components[name] += v
        with torch.no_grad():  # per-query figures for the step callbacks
            nll = torch.nn.functional.cross_entropy(answer_logits, batch.targets, reduction="none")
            right = answer_logits.argmax(-1) == batch.targets
            for q, v, i in zip(queries, views, first):
                seg = slice(batch.offsets[i], batch.offsets[i] + examples[i].answer_len)
                result.queries.append(q)
                result.views.append(v)
                result.risk.append(float(nll[seg].mean()) / LN_V)
                result.cells_right.append(bool(right[seg].all()))
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
    finite = math.isfinite(loss_value) and math.isfinite(grad_norm)
    if finite:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    stats = {"loss": loss_value, "components": components, "grad_norm": grad_norm,
             "tokens": tokens, "skipped": not finite}
    return stats, result


def validate(run: Run, epoch: int) -> tuple[tuple[int, int], float | None, int]:
    right, total = exact_accuracy(run.agent, run.eval_queries, run.cfg.max_len)
    val, n_val = None, 0
    if run.val_queries and (epoch + 1) % run.cfg.val_frequency == 0:
        report = pass_at_2(run.agent, run.val_queries, run.cfg.max_len)
        val, n_val = report.score, len(report.tasks)
    return (right, total), val, n_val


def fit(run: Run, callbacks: Sequence[StepCallback] = ()) -> Path:
    cfg, pos = run.cfg, run.pos
    n_micro = _micro_batches_per_epoch(cfg, len(run.queries))
    t_start = time.time()
    for epoch in range(pos.epoch, cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(run.queries))
        b = pos.batch if epoch == pos.epoch else 0
        epoch_losses: list[float] = []
        epoch_components = {name: [] for name in COMPONENTS}
        nan_skipped = 0
        t_epoch = time.time()
        bar = tqdm(total=n_micro, initial=b, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", dynamic_ncols=True, file=sys.stderr)
        run.agent.train()
        while b < n_micro:
            # 1. micro-batches of this step (their views are fixed by seed, epoch and index)
            t0 = time.time()
            last = min(b + cfg.grad_accum_steps, n_micro)
            micro = [build_micro_batch(run, epoch, i, order) for i in range(b, last)]
            lr = run.optimizer.param_groups[0]["lr"]
            # 2. forward, backward, clip, step
            stats, result = train_step(run, epoch, micro, pos.step)
            # 3. bookkeeping and logging
            pos.step += 1
            b = last
            pos.epoch, pos.batch = epoch, b
            dt = time.time() - t0
            nan_skipped += stats["skipped"]
            if not stats["skipped"]:
                epoch_losses.append(stats["loss"])
                for name, v in stats["components"].items():
                    epoch_components[name].append(v)
            tok_s = stats["tokens"] / max(dt, 1e-9)
            run.log.log({"kind": "step", "step": pos.step, "epoch": epoch + 1, "loss": stats["loss"],
                         "components": stats["components"], "lr": lr, "grad_norm": stats["grad_norm"],
                         "tokens_per_s": tok_s})
            bar.set_postfix(loss=f"{stats['loss']:.4f}", tok_s=f"{tok_s:.0f}")
            bar.update(len(micro))
            for cb in callbacks:
                cb(result)
        bar.close()
        # 4. end of epoch: accuracy, report, diagnosis, checkpoint
        (right, total), val, n_val = validate(run, epoch)
        pos.epoch, pos.batch, pos.epochs_done = epoch + 1, 0, epoch + 1
        mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        record = {"kind": "epoch", "epoch": epoch + 1, "train_loss": mean(epoch_losses),
                  "components": {k: mean(v) for k, v in epoch_components.items()},
                  "train_accuracy": right / max(total, 1), "val_accuracy": val,
                  "memory_adds": 0, "memory_queries": 0, "memory_size": 0, "nan_skipped": nan_skipped,
                  "seconds": time.time() - t_epoch}
        run.log.log(record)
        _print_epoch_report(run, record, right, total, n_val, time.time() - t_start)
        if (epoch + 1) % cfg.save_frequency == 0 or epoch + 1 == cfg.epochs:
            save_checkpoint(run.run_dir, run.agent.backbone, run.optimizer, run.scheduler, pos,
                            cfg.to_dict())
    run.log.close()
    print(f"run folder: {run.run_dir}")
    return run.run_dir


def _print_epoch_report(run: Run, rec: dict, right: int, total: int, n_val: int, elapsed: float) -> None:
    comps = ", ".join(f"{k} {v:.4f}" for k, v in rec["components"].items())
    val = ("not measured" if rec["val_accuracy"] is None
           else f"{rec['val_accuracy'] * 100:.2f}% (pass@2 over {n_val} tasks)")
    print(f"\nEpoch {rec['epoch']}/{run.cfg.epochs}")
    print(f"  Loss: {rec['train_loss']:.4f}  ({comps})")
    print(f"  Memory bank updates: {rec['memory_adds']}/{rec['memory_queries']} "
          "(no memory bank in this build: Solver2 is not part of it yet)")
    print(f"  Training Accuracy: {rec['train_accuracy'] * 100:.2f}% ({right}/{total} grids correct)")
    print(f"  Validation Accuracy: {val}")
    print(f"  NaN/inf steps skipped: {rec['nan_skipped']}")
    print(f"  Elapsed: {elapsed:.0f}s")
    config, records = load_run(run.run_dir)
    write_diagnosis(run.run_dir, config, records)
    worst = [f for f in diagnose(config, records) if f.severity in ("problem", "warning")]
    summary = "; ".join(f.title for f in worst[:3]) if worst else "no problems found"
    print(f"  Diagnosis: {summary} (details: {run.run_dir / 'diagnosis.txt'})")


def train(cfg: TrainConfig, resume: str | Path | None = None,
          callbacks: Sequence[StepCallback] = ()) -> Path:
    return fit(setup(cfg, resume), callbacks)


def config_for_resume(run_dir: Path, args) -> TrainConfig:
    """The saved config of a run; --epochs, --max-batches and --device may be changed."""
    saved, _ = load_run(run_dir)
    if not saved:
        raise ArcEfeError(f"{run_dir}: no config.json; is this a run folder?")
    cfg = TrainConfig.from_dict(saved)
    defaults = TrainConfig()
    for name in ("epochs", "max_batches", "device"):
        value = getattr(args, name)
        if value is not None and value != getattr(defaults, name):
            setattr(cfg, name, value)
    return cfg


def main(argv: Sequence[str] | None = None, prog: str = "arc-efe train") -> int:
    import argparse

    from .config import add_train_args, config_from_args
    parser = argparse.ArgumentParser(prog=prog, description="Train an ARC solver on a Qwen backbone "
                                     "with the EFE objective; prints a report after every epoch.")
    add_train_args(parser)
    args = parser.parse_args(argv)
    try:
        if args.resume:
            cfg = config_for_resume(Path(args.resume), args)
        else:
            cfg = config_from_args(args)
        train(cfg, resume=args.resume)
    except ArcEfeError as e:  # bad input or a bad setting: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
