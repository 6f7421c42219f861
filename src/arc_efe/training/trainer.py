"""The training run: `Trainer` owns its state and does, as methods, what a run does.

Read top to bottom. `setup()` (run.py) builds a Trainer; `fit()` runs its epochs. Each
optimizer step (`step`): build the step's micro-batches (each query seen through a random view,
a second view for the consistency term, and its inverse task for the bidirectional term);
forward and backward each micro-batch with the loss normalised per answer token over the whole
step; clip; step, or skip a step whose loss or gradient is not finite. The step's outcome is
one `StepOutcome` (solver2/retrieval.py), which the memory writer and any other step callback
read. Then the loop logs it, calls the callbacks, counts bad steps and rolls back after too
many (`roll_back`), and writes a checkpoint every --save-every-steps and on SIGINT/SIGTERM
(stopping.py). Each epoch ends with training and validation accuracy, the report in the
users' words, the diagnosis and a checkpoint (`end_epoch`; the printing is epoch_report.py).
At the end: the HTML run report.

The NaN/inf guard: a skipped step leaves the weights, the optimizer moments and (through
`StepOutcome.skipped`) the memory bank untouched, and is counted as `nan_skipped`. One bad
step is usually a bad batch; many in a row mean the weights or the moments have gone bad, so
after `--nan-rollback` consecutive bad steps `roll_back` restores the newest checkpoint that
verifies (weights, optimizer moments, Solver2, memory bank) and multiplies the learning rate
by `--rollback-lr-factor`. The data position and the step count go on: the batches around
the blow-up are not replayed. Each rollback is printed, written to metrics.jsonl (`"kind":
"rollback"`) and reported by `arc-efe diagnose`; past `--max-rollbacks`, training stops.
"""

from __future__ import annotations

import errno
import math
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..data.dataset import Query
from ..data.packing import make_batch
from ..data.sequences import Example, aligned_cells, forward_example, inverse_example
from ..data.tokens import VOCAB_SIZE, SequenceTooLong
from ..data.views import View, random_view
from ..errors import ArcEfeError
from ..loss import COMPONENTS, EFELoss
from ..model import distributed as dist
from ..model.policy import Policy
from ..model.backbone import changeable_weights
from ..model.device import autocast
from ..model.sharding import clip_grad_norm, full_optimizer_state, full_state, gathered
from ..saved.checkpoint import (Position, disk_full, last_good_checkpoint, restore_weights, save_checkpoint,
                                weights_finite)
from ..saved.config import TrainConfig
from ..solver2.memory import MemoryBank
from ..solver2.retrieval import MemoryWriter, Solver2, StepOutcome, task_keys
from .epoch_report import print_epoch_report, report_after_training
from .evaluation import ICL_SIDE, exact_accuracy, icl_queries, pass_at_2
from .metrics import MetricsLog
from .stopping import StopRequests, TrainingStopped
from .trainset import TrainingData

LN_V = math.log(VOCAB_SIZE)

StepCallback = Callable[[StepOutcome], None]


@dataclass
class LoopState:
    """What the loop carries from step to step besides the position; saved in each checkpoint,
    so an epoch resumed in its middle reports the same figures as an uninterrupted one."""
    losses: list[float] = field(default_factory=list)  # this epoch's finite step losses
    components: dict[str, list[float]] = field(default_factory=lambda: {n: [] for n in COMPONENTS})
    nan_skipped: int = 0  # this epoch
    retrieved: int = 0  # this epoch: queries that found memory entries
    memory_adds: int = 0  # this epoch (the memory writer's counters)
    memory_queries: int = 0
    memory_known: int = 0  # solved queries the bank already held
    grids_right: int = 0  # this epoch: trained queries whose answer had every token right (before the step)
    grids: int = 0  # this epoch: trained queries counted (steps not skipped)
    seconds: float = 0.0  # time this epoch had run when the checkpoint was written
    bad_streak: int = 0  # non-finite steps in a row
    lr_scale: float = 1.0  # product of the rollbacks' factors
    rollbacks: int = 0

    def new_epoch(self) -> None:
        keep = {"bad_streak": self.bad_streak, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks}
        self.__dict__.update(asdict(LoopState(**keep)))

    def count(self, outcome: StepOutcome) -> None:
        """Add a step's figures to the epoch's (a skipped step adds its skip only)."""
        self.nan_skipped += outcome.skipped
        self.retrieved += outcome.retrieved
        if outcome.skipped:
            return
        self.losses.append(outcome.loss)
        self.grids_right += outcome.grids_right
        self.grids += outcome.grids
        for name, v in outcome.components.items():
            self.components[name].append(v)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | Path = "meta.json") -> "LoopState":
        """The state saved in a checkpoint's meta.json; a value of the wrong kind is named."""
        default = cls()
        values = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v, want = d[f.name], getattr(default, f.name)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) if isinstance(want, (int, float))
                  else isinstance(v, type(want)))
            if not ok:
                raise ArcEfeError(f"{source}: state.{f.name} is {v!r:.40}, expected {type(want).__name__}")
            values[f.name] = v
        return cls(**values)


@dataclass
class MicroBatch:
    queries: list[Query]
    views: list[View]  # each query's training view (its first forward example)
    examples: list[Example]
    owner: list[int]  # query (index into `queries`) of each example
    pairs: list[tuple[int, int]]  # two forward examples of one query, for consistency
    first: list[int]  # each query's first forward example


def build_micro_batch(cfg: TrainConfig, data: TrainingData, epoch: int, b: int) -> MicroBatch:
    """Micro-batch b of an epoch (see trainset.TrainingData.query); its views come from an
    RNG seeded by (seed, epoch, b): a resumed run sees the same ones."""
    rng = np.random.default_rng([cfg.seed, epoch, b, 1])
    queries = [data.query(cfg, epoch, b, slot, rng) for slot in range(cfg.batch_size)]
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
        mb.first.append(add(k, forward_example(q, view, cfg.max_len)))
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


@dataclass(kw_only=True)
class Trainer:
    """One training run: what it trains, on what, and where it stands."""
    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    dtype: torch.dtype
    policy: Policy  # the whole network: backbone with grid positions and output head
    loss_fn: EFELoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    data: TrainingData
    log: MetricsLog
    steps_per_epoch: int
    solver2: Solver2 | None = None
    bank: MemoryBank | None = None
    writer: MemoryWriter | None = None  # Solver2's success rule, called after every step
    model: Policy | None = None  # the training step's policy when it differs (--compile); else `policy`
    units: list[torch.nn.Module] | None = None  # the backbone's FSDP units (--fsdp)
    pos: Position = field(default_factory=lambda: Position(0, 0, 0, 0))
    state: LoopState = field(default_factory=LoopState)
    t_epoch: float = 0.0  # when the epoch in progress started (moved back by a resume)

    @property
    def queries(self) -> list[Query]:
        return self.data.queries

    @property
    def val_queries(self) -> list[Query]:
        return self.data.val_queries

    # --- the run ---------------------------------------------------------------------------

    def fit(self, callbacks: Sequence[StepCallback] = ()) -> Path:
        """Train every epoch left, then save the memory bank and write the HTML report."""
        try:
            with StopRequests() as stop:
                self._epochs(callbacks, stop)
            if self.bank is not None and dist.is_main():
                self.bank.save(self.run_dir / "memory")
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ArcEfeError(disk_full(self.run_dir, e.filename)) from None
        finally:
            self.log.close()
        if dist.is_main():
            report_after_training(self.run_dir)
        dist.print0(f"run folder: {self.run_dir}")
        return self.run_dir

    def _epochs(self, callbacks: Sequence[StepCallback], stop: StopRequests) -> None:
        cfg, pos, state = self.cfg, self.pos, self.state
        n_micro = self.data.batches_per_epoch(cfg)
        t_start = time.time()
        callbacks = ([self.writer] if self.writer is not None else []) + list(callbacks)
        if pos.step == 0:  # the starting weights: what a rollback before any other checkpoint goes back to
            self.t_epoch = time.time()
            self.checkpoint()
        for epoch in range(pos.epoch, cfg.epochs):
            b = pos.batch if epoch == pos.epoch else 0
            if b == 0:
                state.new_epoch()
            if self.writer is not None:  # a resumed epoch goes on counting from its checkpoint
                self.writer.adds, self.writer.queries, self.writer.known = (state.memory_adds, state.memory_queries,
                                                                            state.memory_known)
            self.t_epoch = time.time() - state.seconds
            save = (epoch + 1) % cfg.save_frequency == 0 or epoch + 1 == cfg.epochs
            # closed on any exit, so that an error message starts on a line of its own
            with tqdm(total=n_micro, initial=b, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                      dynamic_ncols=True, file=sys.stderr, disable=not dist.is_main()) as bar:
                self.policy.train()
                while b < n_micro:
                    # 1. the step's micro-batches (views fixed by seed, epoch and index); under
                    # torchrun this rank takes every world-th of them
                    t0 = time.time()
                    last = min(b + cfg.grad_accum_steps * dist.world_size(), n_micro)
                    micro = [self.micro_batch(epoch, i) for i in range(b + dist.rank(), last, dist.world_size())]
                    # --fsdp: a rank short of a micro-batch at the end of an epoch runs one that counts zero
                    padding = len(range(b, last, dist.world_size())) - len(micro) if self.units else 0
                    micro += [self.micro_batch(epoch, b)] * padding
                    lr = self.optimizer.param_groups[0]["lr"]
                    # 2. forward, backward, clip, step (or skip a non-finite one)
                    outcome = self.step(epoch, micro, padding)
                    # 3. bookkeeping, logging, the callbacks (the memory writer first)
                    step_batches, b = last - b, last
                    pos.epoch, pos.batch = epoch, b
                    state.count(outcome)
                    tok_s = outcome.tokens / max(time.time() - t0, 1e-9)
                    self.log.log({"kind": "step", "step": pos.step, "epoch": epoch + 1, "loss": outcome.loss,
                                  "components": outcome.components, "lr": lr, "grad_norm": outcome.grad_norm,
                                  "tokens_per_s": tok_s})
                    bar.set_postfix(loss=f"{outcome.loss:.4f}", tok_s=f"{tok_s:.0f}")
                    bar.update(step_batches)
                    # --fsdp: the memory writer's forwards differ between ranks; they run on whole weights
                    with gathered(self.units if callbacks else None):
                        for cb in callbacks:
                            cb(outcome)
                    self._guard(outcome.skipped)  # roll back after too many bad steps in a row
                    # 4. checkpoint every --save-every-steps, and on SIGINT/SIGTERM
                    signum = stop.agreed(self.device)
                    # (not in a run of bad steps: a rollback must find the weights from before it)
                    due = cfg.save_every_steps and pos.step % cfg.save_every_steps == 0 and not state.bad_streak
                    if signum or (due and not (b == n_micro and save)):  # the epoch's own checkpoint follows
                        path = self.checkpoint()
                        if signum:
                            raise TrainingStopped(signum, pos.step, path, self.run_dir, dist.is_main())
            # 5. end of epoch: accuracy, report, diagnosis (rank 0; the others wait), checkpoint
            pos.epoch, pos.batch, pos.epochs_done = epoch + 1, 0, epoch + 1
            with gathered(self.units):  # --fsdp: rank 0 alone decodes
                dist.on_main(lambda: self.end_epoch(epoch, t_start))
            if save and (not state.bad_streak or epoch + 1 == cfg.epochs):
                self.checkpoint()
            elif save:
                dist.print0(f"not writing the epoch's checkpoint: {state.bad_streak} bad step(s) in a row so far "
                            "(a rollback must find the weights from before them)")

    # --- one optimizer step ----------------------------------------------------------------

    def micro_batch(self, epoch: int, b: int) -> MicroBatch:
        return build_micro_batch(self.cfg, self.data, epoch, b)

    def step(self, epoch: int, micro: list[MicroBatch], padding: int = 0) -> StepOutcome:
        """Forward/backward every micro-batch of one optimizer step, then clip and step; the
        step count advances. The last `padding` micro-batches only keep the ranks in step
        (--fsdp: every rank must run as many forwards and backwards); their loss counts zero."""
        policy = self.model or self.policy
        n_real = len(micro) - padding
        counts = {"answer": 0, "consistency": 0, "inverse": 0}
        for mb in micro[:n_real]:
            for e in mb.examples:
                counts["answer" if e.kind == "forward" else "inverse"] += e.answer_len
            counts["consistency"] += sum(len(mb.examples[i].cell_pos) for i, _ in mb.pairs)
        # normalise by the whole step's tokens, over every rank (distributed.py)
        counts = dict(zip(counts, map(int, dist.sum_floats(list(counts.values()), self.device))))
        components = {name: 0.0 for name in COMPONENTS}
        loss_value, tokens = 0.0, 0
        outcome = StepOutcome(self.pos.step, epoch)
        for j, mb in enumerate(micro):
            real = j < n_real
            batch = make_batch(mb.examples, self.cfg.max_tokens, self.cfg.pack).to(self.device)
            memory, found = self._memory_vectors(mb)
            with autocast(self.device, self.dtype):
                logits = policy(batch.input_ids, memory=batch.spread(memory), **batch.model_inputs())
            answer_logits = logits[batch.rows, batch.cols].float()
            kinds = [e.kind for e in mb.examples]
            idx = {kind: _segments(batch.offsets, mb.examples, [i for i, k in enumerate(kinds) if k == kind],
                                   self.device) for kind in ("forward", "inverse")}
            out = self.loss_fn(answer_logits[idx["forward"]], batch.targets[idx["forward"]],
                               consistency=aligned_cells(answer_logits, batch.offsets, mb.examples, mb.pairs),
                               inverse=(answer_logits[idx["inverse"]], batch.targets[idx["inverse"]]),
                               counts=counts)
            (out.total if real else out.total * 0.0).backward()
            if not real:
                continue
            tokens += batch.n_tokens
            outcome.retrieved += found
            loss_value += float(out.total.detach())
            for name, v in out.components.items():
                components[name] += v
            with torch.no_grad():  # per-query figures for the step callbacks (Solver2's success rule)
                nll = torch.nn.functional.cross_entropy(answer_logits, batch.targets, reduction="none")
                right = answer_logits.argmax(-1) == batch.targets
                for q, v, i in zip(mb.queries, mb.views, mb.first):
                    seg = slice(batch.offsets[i], batch.offsets[i] + mb.examples[i].answer_len)
                    outcome.queries.append(q)
                    outcome.views.append(v)
                    outcome.risk.append(float(nll[seg].mean()) / LN_V)
                    outcome.cells_right.append(bool(right[seg].all()))
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        dist.sum_gradients(params)
        totals = dist.sum_floats([loss_value, tokens, outcome.retrieved, sum(outcome.cells_right),
                                  len(outcome.cells_right), *components.values()], self.device)
        outcome.loss, outcome.tokens, outcome.retrieved = totals[0], int(totals[1]), int(totals[2])
        outcome.grids_right, outcome.grids = int(totals[3]), int(totals[4])  # every rank's queries
        outcome.components = dict(zip(components, totals[5:]))
        outcome.grad_norm, finite = self._clip_and_step(params, outcome.loss)
        outcome.skipped = not finite
        self.pos.step += 1
        return outcome

    def _memory_vectors(self, mb: MicroBatch) -> tuple[torch.Tensor | None, int]:
        """Solver2's readout for each example of a micro-batch (None while the bank is empty).

        Retrieval leaves out the query's own task, so the model cannot copy its own answer."""
        if self.bank is None or len(self.bank) == 0:
            return None, 0
        keys = task_keys(self.policy.backbone, [mb.examples[i] for i in mb.first], self.device)
        per_query, found = self.solver2.readout(self.bank, keys, [q.task.id for q in mb.queries])
        per_example = per_query[mb.owner]
        inverse = torch.tensor([e.kind == "inverse" for e in mb.examples], device=self.device)
        return per_example.masked_fill(inverse[:, None], 0.0), found

    def _clip_and_step(self, params: list[torch.nn.Parameter], loss_value: float) -> tuple[float, bool]:
        """Clip the gradients, then step unless the loss or the gradient norm is not finite; the
        gradients are cleared and the schedule advances either way. Returns (norm, stepped)."""
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        if self.units:  # sharded and plain gradients together
            grad_norm = clip_grad_norm(params, clip)
        else:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        finite = math.isfinite(loss_value) and math.isfinite(grad_norm)
        if finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped first step is not the mistake this warns about
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()
        return grad_norm, finite

    # --- the NaN guard ---------------------------------------------------------------------

    def _guard(self, skipped: bool) -> None:
        """Count the bad-step streak; roll back when it reaches --nan-rollback."""
        state = self.state
        state.bad_streak = state.bad_streak + 1 if skipped else 0
        if self.cfg.nan_rollback and state.bad_streak >= self.cfg.nan_rollback:
            self.roll_back()

    def roll_back(self) -> None:
        """The newest good checkpoint from before the bad steps: its weights, moments, Solver2 and
        bank; learning rate x factor."""
        cfg, state, step = self.cfg, self.state, self.pos.step
        if state.rollbacks >= cfg.max_rollbacks:
            raise ArcEfeError(
                f"{self.run_dir}: the loss or gradient is still NaN or infinite at step {step} after "
                f"{state.rollbacks} rollback(s) (learning rate now x{state.lr_scale:g}); stopping. Lower "
                f"--agent-lr / --qwen-lr, check the data, and see arc-efe diagnose {self.run_dir}")
        # a checkpoint written during the bad steps holds the same weights they started from: go
        # back to one from before them
        ckpt = last_good_checkpoint(self.run_dir, max_step=step - state.bad_streak)
        if ckpt is not None:
            bank = restore_weights(ckpt, self.policy.backbone, self.optimizer, self.solver2)
            if self.bank is not None and bank is not None:
                self.bank = bank
                if self.writer is not None:
                    self.writer.bank = bank
            where = f"went back to checkpoint {ckpt.name}"
        else:
            # No checkpoint verifies (the step-0 one could not be written): the weights never took a
            # bad step, but the optimizer's moments may carry the blow-up; start them again.
            self.optimizer.state.clear()
            where = "kept the weights (no good checkpoint to go back to), cleared the optimizer's moments"
        factor = cfg.rollback_lr_factor
        scheduler = self.scheduler
        scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]
        for group, base, rule in zip(self.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * rule(scheduler.last_epoch)
        state.lr_scale *= factor
        state.rollbacks += 1
        n_bad, state.bad_streak = state.bad_streak, 0
        self.log.log({"kind": "rollback", "step": step, "bad_steps": n_bad,
                      "checkpoint": ckpt.name if ckpt is not None else None, "lr_scale": state.lr_scale})
        dist.print0(f"warning: {n_bad} steps in a row had a NaN or infinite loss or gradient (up to step {step}); "
                    f"{where} and lowered the learning rate to x{state.lr_scale:g} of the schedule")

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint(self) -> Path | None:
        """Every rank calls this; rank 0 writes (--fsdp: every rank first gathers the whole weights).

        Weights that are not finite are never written: the last good checkpoint stays the newest,
        and the NaN guard goes back to it."""
        full = None
        if self.units:
            full = (full_state(changeable_weights(self.policy.backbone)), full_optimizer_state(self.optimizer))
        return dist.on_main(lambda: self._write_checkpoint(full))

    def _write_checkpoint(self, full: tuple[dict, dict] | None) -> Path | None:
        weights = list((full[0] if full else changeable_weights(self.policy.backbone)).values())
        if self.solver2 is not None:
            weights += list(self.solver2.state_dict().values())
        if not weights_finite(weights):
            print(f"warning: weights are NaN or infinite at step {self.pos.step}: checkpoint not written, "
                  "the last good one is kept", file=sys.stderr)
            return None
        state = self.state
        if self.writer is not None:
            w = self.writer
            state.memory_adds, state.memory_queries, state.memory_known = w.adds, w.queries, w.known
        state.seconds = time.time() - self.t_epoch
        self.log.sync()  # the metrics lines up to this step are on disk before the checkpoint
        return save_checkpoint(self.run_dir, self.policy.backbone, self.optimizer, self.scheduler, self.pos,
                               self.cfg.to_dict(), self.solver2, self.bank, full, state.to_dict(),
                               keep=self.cfg.keep_checkpoints)

    # --- the end of an epoch ---------------------------------------------------------------

    def end_epoch(self, epoch: int, t_start: float) -> None:
        """Rank 0: accuracy, the epoch record and the report in the users' words."""
        cfg, state, writer = self.cfg, self.state, self.writer
        right, total = exact_accuracy(self.policy, self.data.eval_queries, cfg.max_len)
        val, n_val = None, 0
        if self.val_queries and (epoch + 1) % cfg.val_frequency == 0:
            report = pass_at_2(self.policy, self.val_queries, cfg.max_len)
            val, n_val = report.score, len(report.tasks)
        icl_right, icl_total = (exact_accuracy(self.policy, icl_queries(cfg.icl_tasks), cfg.max_len, ICL_SIDE)
                                if cfg.icl_tasks else (0, 0))
        mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        record = {"kind": "epoch", "epoch": epoch + 1, "train_loss": mean(state.losses),
                  "components": {k: mean(v) for k, v in state.components.items()},
                  "train_accuracy": right / max(total, 1), "val_accuracy": val,
                  "icl_accuracy": icl_right / icl_total if icl_total else None,
                  "icl_right": icl_right, "icl_total": icl_total,
                  "batch_accuracy": state.grids_right / state.grids if state.grids else None,
                  "batch_right": state.grids_right, "batch_total": state.grids,
                  "memory_adds": writer.adds if writer else 0,
                  "memory_queries": writer.queries if writer else 0,
                  "memory_known": writer.known if writer else 0,
                  "memory_size": len(self.bank) if self.bank is not None else 0,
                  "memory_retrieved": state.retrieved, "nan_skipped": state.nan_skipped,
                  "rollbacks": state.rollbacks, "lr_scale": state.lr_scale,
                  "seconds": time.time() - self.t_epoch}
        self.log.log(record)
        print_epoch_report(self.run_dir, cfg.epochs, self.bank is not None, record, right, total, n_val,
                           time.time() - t_start)

