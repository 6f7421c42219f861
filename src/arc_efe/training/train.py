"""Training: setup() builds everything (run.py), fit() runs the loop, one phase after another.

Each optimizer step: set the learning rate; build the step's micro-batches (each query seen
through a random view, a second view for the consistency term, and its inverse task for the
bidirectional term); forward and backward each micro-batch with the loss normalised per
answer token over the whole step; clip; step (or skip a non-finite step, and roll back after
too many: guard.py); log; call the step callbacks; a checkpoint every --save-every-steps, and
on SIGINT/SIGTERM before stopping (stopping.py). Each epoch: training and validation accuracy,
the report in the users' words, the diagnosis, a checkpoint (epoch_report.py). At the end: the
HTML run report (reporting/report.py).
"""

from __future__ import annotations

import errno
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..data.dataset import Query
from ..data.packing import make_batch
from ..data.sequences import Example, aligned_cells, forward_example, inverse_example
from ..data.tokens import VOCAB_SIZE, SequenceTooLong
from ..data.views import View, random_view
from ..errors import ArcEfeError
from ..loss import COMPONENTS
from ..model import distributed as dist
from ..model.device import autocast
from ..model.sharding import gathered
from ..saved.checkpoint import disk_full
from ..saved.config import TrainConfig
from ..solver2.retrieval import task_keys
from .epoch_report import end_of_epoch, report_after_training
from .guard import after_step, checkpoint, guarded_step
from .run import Run, setup
from .stopping import StopRequests, TrainingStopped

LN_V = math.log(VOCAB_SIZE)


@dataclass
class StepResult:
    """What a step saw, per query of its micro-batches: for Solver2's success rule."""
    step: int
    epoch: int
    queries: list[Query]
    views: list[View]
    risk: list[float]  # per-query risk of the forward view (normalised like the loss)
    cells_right: list[bool]  # every answer token argmax-right under teacher forcing
    retrieved: int = 0  # queries that found at least one memory entry
    skipped: bool = False  # the step was not taken (non-finite loss or gradient)


StepCallback = Callable[[StepResult], None]


@dataclass
class MicroBatch:
    queries: list[Query]
    views: list[View]  # each query's training view (its first forward example)
    examples: list[Example]
    owner: list[int]  # query (index into `queries`) of each example
    pairs: list[tuple[int, int]]  # two forward examples of one query, for consistency
    first: list[int]  # each query's first forward example


def build_micro_batch(run: Run, epoch: int, b: int) -> MicroBatch:
    """Micro-batch b of an epoch (see trainset.TrainingData.query); its views come from an
    RNG seeded by (seed, epoch, b): a resumed run sees the same ones."""
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, epoch, b, 1])
    queries = [run.data.query(cfg, epoch, b, slot, rng) for slot in range(cfg.batch_size)]
    mb = MicroBatch(queries, [], [], [], [], [])
    want_second = cfg.augment and cfg.weights["consistency"] > 0

    def add(k: int, e: Example) -> int:
        mb.examples.append(e)
        mb.owner.append(k)
        return len(mb.examples) - 1

    for k, q in enumerate(mb.queries):
        n = len(q.context)
        view = random_view(rng, n) if cfg.augment else View()
        mb.views.append(view)
        base = forward_example(q, view, cfg.max_len)
        mb.first.append(add(k, base))
        if want_second:
            mb.pairs.append((mb.first[-1], add(k, forward_example(q, random_view(rng, n), cfg.max_len))))
        if cfg.weights["bidirectional"] > 0:
            try:
                add(k, inverse_example(q, view, cfg.max_len))
            except SequenceTooLong:
                pass  # the inverse of this query does not fit; its forward terms still count
    return mb


def _segments(offsets: list[int], examples: Sequence[Example], which: Sequence[int], device) -> torch.Tensor:
    return torch.cat([torch.arange(offsets[i], offsets[i] + examples[i].answer_len, device=device)
                      for i in which]) if which else torch.zeros(0, dtype=torch.long, device=device)


def _memory_vectors(run: Run, mb: MicroBatch) -> tuple[torch.Tensor | None, int]:
    """Solver2's readout for each example of a micro-batch (None while the bank is empty).

    Retrieval leaves out the query's own task, so the model cannot copy its own answer."""
    if run.bank is None or len(run.bank) == 0:
        return None, 0
    keys = task_keys(run.agent.backbone, [mb.examples[i] for i in mb.first], run.device)
    per_query, found = run.solver2.readout(run.bank, keys, [q.task.id for q in mb.queries])
    per_example = per_query[mb.owner]
    inverse = torch.tensor([e.kind == "inverse" for e in mb.examples], device=run.device)
    return per_example.masked_fill(inverse[:, None], 0.0), found


def train_step(run: Run, epoch: int, micro: list[MicroBatch], step: int,
               padding: int = 0) -> tuple[dict, StepResult]:
    """Forward/backward every micro-batch of one optimizer step, then clip and step. The last
    `padding` micro-batches only keep the ranks in step (--fsdp: every rank must run as many
    forwards and backwards); their loss counts zero."""
    cfg, agent = run.cfg, run.model or run.agent
    n_real = len(micro) - padding
    counts = {"answer": 0, "consistency": 0, "inverse": 0}
    for mb in micro[:n_real]:
        for e in mb.examples:
            counts["answer" if e.kind == "forward" else "inverse"] += e.answer_len
        counts["consistency"] += sum(len(mb.examples[i].cell_pos) for i, _ in mb.pairs)
    # normalise by the whole step's tokens, over every rank (distributed.py)
    counts = dict(zip(counts, map(int, dist.sum_floats(list(counts.values()), run.device))))
    components = {name: 0.0 for name in COMPONENTS}
    loss_value, tokens = 0.0, 0
    result = StepResult(step, epoch, [], [], [], [])
    for j, mb in enumerate(micro):
        real = j < n_real
        batch = make_batch(mb.examples, cfg.max_tokens, cfg.pack).to(run.device)
        memory, found = _memory_vectors(run, mb)
        with autocast(run.device, run.dtype):
            logits = agent(batch.input_ids, memory=batch.spread(memory), **batch.model_inputs())
        answer_logits = logits[batch.rows, batch.cols].float()
        kinds = [e.kind for e in mb.examples]
        idx = {kind: _segments(batch.offsets, mb.examples, [i for i, k in enumerate(kinds) if k == kind],
                               run.device) for kind in ("forward", "inverse")}
        out = run.loss_fn(answer_logits[idx["forward"]], batch.targets[idx["forward"]],
                          consistency=aligned_cells(answer_logits, batch.offsets, mb.examples, mb.pairs),
                          inverse=(answer_logits[idx["inverse"]], batch.targets[idx["inverse"]]),
                          counts=counts)
        (out.total if real else out.total * 0.0).backward()
        if not real:
            continue
        tokens += batch.n_tokens
        result.retrieved += found
        loss_value += float(out.total.detach())
        for name, v in out.components.items():
            components[name] += v
        with torch.no_grad():  # per-query figures for the step callbacks (Solver2's success rule)
            nll = torch.nn.functional.cross_entropy(answer_logits, batch.targets, reduction="none")
            right = answer_logits.argmax(-1) == batch.targets
            for q, v, i in zip(mb.queries, mb.views, mb.first):
                seg = slice(batch.offsets[i], batch.offsets[i] + mb.examples[i].answer_len)
                result.queries.append(q)
                result.views.append(v)
                result.risk.append(float(nll[seg].mean()) / LN_V)
                result.cells_right.append(bool(right[seg].all()))
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    dist.sum_gradients(params)
    totals = dist.sum_floats([loss_value, tokens, result.retrieved, sum(result.cells_right), len(result.cells_right),
                              *components.values()], run.device)
    loss_value, tokens, result.retrieved = totals[0], int(totals[1]), int(totals[2])
    grids_right, grids = int(totals[3]), int(totals[4])  # every rank's queries
    components = dict(zip(components, totals[5:]))
    grad_norm, finite = guarded_step(run, params, loss_value)  # clip; skip a non-finite step
    result.skipped = not finite
    stats = {"loss": loss_value, "components": components, "grad_norm": grad_norm,
             "tokens": tokens, "skipped": not finite, "grids_right": grids_right, "grids": grids}
    return stats, result


def fit(run: Run, callbacks: Sequence[StepCallback] = ()) -> Path:
    try:
        with StopRequests() as stop:
            _fit(run, callbacks, stop)
        if run.bank is not None and dist.is_main():
            run.bank.save(run.run_dir / "memory")
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ArcEfeError(disk_full(run.run_dir, e.filename)) from None
    finally:
        run.log.close()
    if dist.is_main():
        report_after_training(run.run_dir)
    dist.print0(f"run folder: {run.run_dir}")
    return run.run_dir


def _fit(run: Run, callbacks: Sequence[StepCallback], stop: StopRequests) -> None:
    cfg, pos, state = run.cfg, run.pos, run.state
    n_micro = run.data.batches_per_epoch(cfg)
    t_start = time.time()
    callbacks = ([run.writer] if run.writer is not None else []) + list(callbacks)
    if pos.step == 0:  # the starting weights: what a rollback before any other checkpoint goes back to
        run.t_epoch = time.time()
        checkpoint(run)
    for epoch in range(pos.epoch, cfg.epochs):
        b = pos.batch if epoch == pos.epoch else 0
        if b == 0:
            state.new_epoch()
        if run.writer is not None:  # a resumed epoch goes on counting from its checkpoint
            run.writer.adds, run.writer.queries, run.writer.known = (state.memory_adds, state.memory_queries,
                                                                     state.memory_known)
        run.t_epoch = time.time() - state.seconds
        save = (epoch + 1) % cfg.save_frequency == 0 or epoch + 1 == cfg.epochs
        # closed on any exit, so that an error message starts on a line of its own
        with tqdm(total=n_micro, initial=b, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                  dynamic_ncols=True, file=sys.stderr, disable=not dist.is_main()) as bar:
            run.agent.train()
            while b < n_micro:
                # 1. micro-batches of this step (their views are fixed by seed, epoch and index);
                # under torchrun this rank takes every world-th of them
                t0 = time.time()
                last = min(b + cfg.grad_accum_steps * dist.world_size(), n_micro)
                micro = [build_micro_batch(run, epoch, i) for i in range(b + dist.rank(), last, dist.world_size())]
                # --fsdp: a rank short of a micro-batch at the end of an epoch runs one that counts zero
                padding = len(range(b, last, dist.world_size())) - len(micro) if run.units else 0
                micro += [build_micro_batch(run, epoch, b)] * padding
                lr = run.optimizer.param_groups[0]["lr"]
                # 2. forward, backward, clip, step (a non-finite step is skipped: guard.py)
                stats, result = train_step(run, epoch, micro, pos.step, padding)
                # 3. bookkeeping and logging
                pos.step += 1
                step_batches, b = last - b, last
                pos.epoch, pos.batch = epoch, b
                dt = time.time() - t0
                state.nan_skipped += stats["skipped"]
                state.retrieved += result.retrieved
                if not stats["skipped"]:
                    state.losses.append(stats["loss"])
                    state.grids_right += stats["grids_right"]
                    state.grids += stats["grids"]
                    for name, v in stats["components"].items():
                        state.components[name].append(v)
                tok_s = stats["tokens"] / max(dt, 1e-9)
                run.log.log({"kind": "step", "step": pos.step, "epoch": epoch + 1, "loss": stats["loss"],
                             "components": stats["components"], "lr": lr, "grad_norm": stats["grad_norm"],
                             "tokens_per_s": tok_s})
                bar.set_postfix(loss=f"{stats['loss']:.4f}", tok_s=f"{tok_s:.0f}")
                bar.update(step_batches)
                # --fsdp: the memory writer's forwards differ between ranks; they run on whole weights
                with gathered(run.units if callbacks else None):
                    for cb in callbacks:
                        cb(result)
                after_step(run, stats["skipped"])  # NaN guard: roll back after too many bad steps
                # 4. checkpoint every --save-every-steps, and on SIGINT/SIGTERM
                signum = stop.agreed(run.device)
                # (not in a run of bad steps: a rollback must find the weights from before it)
                due = cfg.save_every_steps and pos.step % cfg.save_every_steps == 0 and not state.bad_streak
                if signum or (due and not (b == n_micro and save)):  # the epoch's own checkpoint follows
                    path = checkpoint(run)
                    if signum:
                        raise TrainingStopped(signum, pos.step, path, run.run_dir, dist.is_main())
        # 5. end of epoch: accuracy, report, diagnosis (rank 0; the others wait), checkpoint
        pos.epoch, pos.batch, pos.epochs_done = epoch + 1, 0, epoch + 1
        with gathered(run.units):  # --fsdp: rank 0 alone decodes
            dist.on_main(lambda: end_of_epoch(run, epoch, t_start))
        if save and (not state.bad_streak or epoch + 1 == cfg.epochs):
            checkpoint(run)
        elif save:
            dist.print0(f"not writing the epoch's checkpoint: {state.bad_streak} bad step(s) in a row so far "
                        "(a rollback must find the weights from before them)")


def train(cfg: TrainConfig, resume: str | Path | None = None,
          callbacks: Sequence[StepCallback] = (), resume_checkpoint: str | None = None) -> Path:
    try:
        run_dir = fit(setup(cfg, resume, resume_checkpoint), callbacks)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()
    return run_dir
