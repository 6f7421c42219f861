"""What keeps a long run safe: the loop state each checkpoint carries, writing those
checkpoints from the loop, and the NaN/inf guard.

A step whose loss or gradient norm is not finite is skipped (`guarded_step`): the
optimizer does not step, so the weights, the optimizer moments and (through `StepResult.skipped`)
the memory bank never see it; it is counted as `nan_skipped`. One bad step is usually a bad
batch. Many in a row mean the weights or the optimizer moments have gone bad, so after
`--nan-rollback` consecutive bad steps `roll_back` restores the newest checkpoint that verifies
(weights, optimizer moments, Solver2, memory bank) and multiplies the learning rate by
`--rollback-lr-factor`. The data position and the step count go on: the batches around the blow-up
are not replayed. Each rollback is printed, written to metrics.jsonl (`"kind": "rollback"`) and
reported by `arc-efe diagnose`; past `--max-rollbacks`, training stops with an error.
"""

from __future__ import annotations

import math
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import ArcEfeError
from ..loss import COMPONENTS
from ..model import distributed as dist
from ..model.backbone import changeable_weights
from ..model.sharding import clip_grad_norm, full_optimizer_state, full_state
from ..saved.checkpoint import last_good_checkpoint, restore_weights, save_checkpoint, weights_finite


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


def guarded_step(run, params: list[torch.nn.Parameter], loss_value: float) -> tuple[float, bool]:
    """Clip the gradients, then step unless the loss or the gradient norm is not finite; the
    gradients are cleared and the schedule advances either way. Returns (norm, stepped)."""
    clip = run.cfg.grad_clip if run.cfg.grad_clip > 0 else float("inf")
    if run.units:  # sharded and plain gradients together
        grad_norm = clip_grad_norm(params, clip)
    else:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
    finite = math.isfinite(loss_value) and math.isfinite(grad_norm)
    if finite:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # a skipped first step is not the mistake this warns about
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        run.scheduler.step()
    return grad_norm, finite


def checkpoint(run) -> Path | None:
    """Every rank calls this; rank 0 writes (--fsdp: every rank first gathers the whole weights).

    Weights that are not finite are never written: the last good checkpoint stays the newest,
    and the NaN guard goes back to it."""
    full = None
    if run.units:
        full = (full_state(changeable_weights(run.agent.backbone)), full_optimizer_state(run.optimizer))
    return dist.on_main(lambda: _write_checkpoint(run, full))


def _write_checkpoint(run, full: tuple[dict, dict] | None) -> Path | None:
    weights = list((full[0] if full else changeable_weights(run.agent.backbone)).values())
    if run.solver2 is not None:
        weights += list(run.solver2.state_dict().values())
    if not weights_finite(weights):
        print(f"warning: weights are NaN or infinite at step {run.pos.step}: checkpoint not written, "
              "the last good one is kept", file=sys.stderr)
        return None
    state = run.state
    if run.writer is not None:
        writer = run.writer
        state.memory_adds, state.memory_queries, state.memory_known = writer.adds, writer.queries, writer.known
    state.seconds = time.time() - run.t_epoch
    run.log.sync()  # the metrics lines up to this step are on disk before the checkpoint
    return save_checkpoint(run.run_dir, run.agent.backbone, run.optimizer, run.scheduler, run.pos,
                           run.cfg.to_dict(), run.solver2, run.bank, full, state.to_dict(),
                           keep=run.cfg.keep_checkpoints)


def after_step(run, skipped: bool) -> None:
    """Count the bad-step streak; roll back when it reaches --nan-rollback."""
    state = run.state
    state.bad_streak = state.bad_streak + 1 if skipped else 0
    if run.cfg.nan_rollback and state.bad_streak >= run.cfg.nan_rollback:
        roll_back(run)


def roll_back(run) -> None:
    """The newest good checkpoint from before the bad steps: its weights, moments, Solver2 and
    bank; learning rate x factor."""
    cfg, state, step = run.cfg, run.state, run.pos.step
    if state.rollbacks >= cfg.max_rollbacks:
        raise ArcEfeError(
            f"{run.run_dir}: the loss or gradient is still NaN or infinite at step {step} after "
            f"{state.rollbacks} rollback(s) (learning rate now x{state.lr_scale:g}); stopping. Lower "
            f"--agent-lr / --qwen-lr, check the data, and see arc-efe diagnose {run.run_dir}")
    # a checkpoint written during the bad steps holds the same weights they started from: go
    # back to one from before them
    ckpt = last_good_checkpoint(run.run_dir, max_step=step - state.bad_streak)
    if ckpt is not None:
        bank = restore_weights(ckpt, run.agent.backbone, run.optimizer, run.solver2)
        if run.bank is not None and bank is not None:
            run.bank = bank
            if run.writer is not None:
                run.writer.bank = bank
        where = f"went back to checkpoint {ckpt.name}"
    else:
        # No checkpoint verifies (the step-0 one could not be written): the weights never took a
        # bad step, but the optimizer's moments may carry the blow-up; start them again.
        run.optimizer.state.clear()
        where = "kept the weights (no good checkpoint to go back to), cleared the optimizer's moments"
    factor = cfg.rollback_lr_factor
    scheduler = run.scheduler
    scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]
    for group, base, rule in zip(run.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * rule(scheduler.last_epoch)
    state.lr_scale *= factor
    state.rollbacks += 1
    n_bad, state.bad_streak = state.bad_streak, 0
    run.log.log({"kind": "rollback", "step": step, "bad_steps": n_bad,
                 "checkpoint": ckpt.name if ckpt is not None else None, "lr_scale": state.lr_scale})
    dist.print0(f"warning: {n_bad} steps in a row had a NaN or infinite loss or gradient (up to step {step}); "
                f"{where} and lowered the learning rate to x{state.lr_scale:g} of the schedule")
