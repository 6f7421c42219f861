"""A training run: `setup()` builds everything the loop needs into a `Trainer`, `train()` sets
one up (or resumes it) and fits it.

setup() loads the training data, builds the backbone (a preset, a hub model or --init
weights), the Policy, Solver2 and its memory bank, the loss, the optimizer with its parameter
groups and learning-rate schedule, the run folder and its metrics log; on --resume it restores
all of them from a checkpoint. Under torchrun every rank builds the same run; rank 0 alone
writes the run folder.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..data.files import atomic_write_json
from ..errors import ArcEfeError
from ..loss import EFELoss
from ..model import distributed as dist
from ..model.policy import Policy
from ..model.backbone import ARCHITECTURES, backbone_parameters, head_parameters, trainable_summary
from ..model.compiling import compile_backbone
from ..model.device import default_dtype
from ..model.sharding import NOT_LAUNCHED, shard_backbone
from ..saved.checkpoint import (Position, abandon_newer, clean_partial, find_checkpoint, list_checkpoints,
                                load_checkpoint)
from ..saved.config import TrainConfig, load_run_backbone
from ..saved.modelfolder import SHIPPED, is_model_folder, model_source
from ..solver2.memory import MemoryBank
from ..solver2.retrieval import MemoryWriter, Solver2
from .metrics import MetricsLog, NullLog
from .trainer import LoopState, StepCallback, Trainer
from .trainset import load_training_data


def _param_groups(cfg: TrainConfig, policy: Policy, loss_fn: EFELoss, solver2: Solver2 | None) -> list[dict]:
    """backbone (--qwen-lr), agent head (--agent-lr), Solver2 (2x), loss parameters (0.5x).

    Weight decay applies to matrices only (norm scales and biases are left alone).
    """
    groups = []
    named = [("backbone", backbone_parameters(policy.backbone), cfg.backbone_lr),
             ("agent", head_parameters(policy.backbone), cfg.agent_lr),
             ("solver2", list(solver2.parameters()) if solver2 is not None else [], cfg.agent_lr * 2),
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


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def start_line(cfg: TrainConfig) -> str:
    """The line that says which weights a new run starts from."""
    if cfg.init and Path(cfg.init).resolve() == SHIPPED:
        return (f"start: the shipped pretrained model {_shown(SHIPPED)} (its card: "
                f"{_shown(SHIPPED / 'README.md')}); --init none starts from random weights")
    if cfg.init:
        return f"start: the weights of {cfg.init}"
    hint = ""
    if cfg.model_name in ARCHITECTURES and is_model_folder(SHIPPED):
        hint = (f": it learns ARC from nothing, so expect 0% for a while; --init {_shown(SHIPPED)} "
                "starts from the shipped pretrained model instead")
    return f"start: random weights{hint}"


def setup(cfg: TrainConfig, resume: str | Path | None = None, resume_checkpoint: str | None = None) -> Trainer:
    torch.manual_seed(cfg.seed)
    device = dist.init(cfg.device)  # under torchrun: this rank's device, process group started
    dtype = default_dtype(device)
    data = load_training_data(cfg)
    for reason in data.skipped:
        dist.print0(f"skipped: {reason}")

    init = None
    if cfg.init and resume is None:  # a resumed run takes its weights from its checkpoint
        init = model_source(cfg.init).weights  # verified against its manifest
    backbone = load_run_backbone(cfg, device, init)
    if cfg.grad_checkpointing:  # non-reentrant: works with a frozen embedding (LoRA) as well
        # transformers 5 renamed gradient_checkpointing_enable (deprecated) to activation_checkpointing_enable
        enable = getattr(backbone, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.fsdp and not dist.launched():
        raise ArcEfeError(NOT_LAUNCHED)
    policy = Policy(backbone)
    model = None
    if cfg.compile:  # the training step alone runs compiled; saving and decoding use `policy`
        compiled, warning = compile_backbone(backbone, device)
        if warning:
            dist.print0(warning)
        else:
            model = Policy(compiled)
    hidden = backbone.get_input_embeddings().embedding_dim
    solver2 = None
    if cfg.memory:
        solver2 = Solver2(hidden, top_k=cfg.memory_top_k).to(device)
    bank = MemoryBank(hidden, cfg.memory_capacity) if cfg.memory else None
    loss_fn = EFELoss(**{f"{k}_weight": v for k, v in cfg.weights.items()},
                      label_smoothing=cfg.label_smoothing)
    dist.sync_parameters([m for m in (policy, solver2, loss_fn) if m is not None])
    units = shard_backbone(backbone) if cfg.fsdp else None  # after the sync: plain tensors there
    optimizer = torch.optim.AdamW(_param_groups(cfg, policy, loss_fn, solver2), betas=(0.9, 0.95))
    n_micro = data.batches_per_epoch(cfg)
    steps_per_epoch = math.ceil(n_micro / (cfg.grad_accum_steps * dist.world_size()))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(cfg.warmup_steps, steps_per_epoch * cfg.epochs))

    run_dir, problem = _run_dir(cfg, resume, data.name)  # rank 0 decides and writes; the others follow
    if problem:
        raise ArcEfeError(problem)
    log = MetricsLog(run_dir, cfg.tensorboard) if dist.is_main() else NullLog()
    pos, state = Position(0, 0, 0, 0), LoopState()
    if resume is not None and dist.is_main():
        clean_partial(run_dir)  # folders of a save that was killed half way
    if resume is not None and resume_checkpoint is None and not list_checkpoints(run_dir):
        dist.print0(f"{run_dir} has no checkpoint yet (it stopped before the first): starting it again")
        log.truncate_after(0, 0)
    elif resume is not None:
        ckpt = find_checkpoint(run_dir, resume_checkpoint)  # verified against its manifest
        pos, loaded_bank, saved_state = load_checkpoint(ckpt, policy.backbone, optimizer, scheduler, solver2,
                                                        verify=False)
        state = LoopState.from_dict(saved_state, source=ckpt / "meta.json")
        if resume_checkpoint is not None and dist.is_main():
            for name in abandon_newer(run_dir, ckpt):
                print(f"set aside the later checkpoint {name} (now abandoned_{name})")
        bank = loaded_bank if cfg.memory else None
        log.truncate_after(pos.step, pos.epochs_done)
        dist.print0(f"resumed from {ckpt}: step {pos.step}, epoch {pos.epoch + 1}, batch {pos.batch}")
    writer = None
    if bank is not None:
        writer = MemoryWriter(policy, solver2, bank, cfg.success_threshold, cfg.max_len, device)

    generated = "".join(f" + {s.name} (generated)" for s in data.synthetic)
    dist.print0(f"data: {data.name}: {data.n_fit_tasks} training tasks ({len(data.queries)} queries){generated}, "
                f"{data.n_val_tasks} validation tasks")
    dist.print0(f"model: {cfg.model_name} ({cfg.mode}) on {device}, {trainable_summary(backbone)}")
    if pos.step == 0:
        dist.print0(start_line(cfg))
    if cfg.mode == "frozen":
        dist.print0("warning: the Qwen backbone is frozen: only the output head will learn "
                    "(use --no-freeze-qwen to train it)")
    if bank is not None:
        dist.print0(f"Solver2 memory: on (top {cfg.memory_top_k}, success rule: {cfg.success_threshold}, "
                    f"{len(bank)} entries)")
    if dist.world_size() > 1:
        dist.print0(f"distributed: {dist.world_size()} ranks, each step {cfg.grad_accum_steps * dist.world_size()} "
                    f"micro-batches of {cfg.batch_size} queries")
    return Trainer(cfg=cfg, run_dir=run_dir, device=device, dtype=dtype, policy=policy, loss_fn=loss_fn,
                   optimizer=optimizer, scheduler=scheduler, data=data, log=log, steps_per_epoch=steps_per_epoch,
                   solver2=solver2, bank=bank, writer=writer, model=model, units=units, pos=pos, state=state)


def _run_dir(cfg: TrainConfig, resume, data_name: str) -> tuple[Path, str | None]:
    problem = None
    if dist.is_main():
        if resume is not None:
            run_dir = Path(resume)
        else:
            name = cfg.run_name or datetime.now().strftime("run_%Y%m%d_%H%M%S")
            run_dir = Path(cfg.output_dir) / name
            if (run_dir / "metrics.jsonl").exists():
                problem = (f"{run_dir} already holds a run: pass --resume {run_dir} to continue "
                           "it, or choose another --run-name")
            else:
                run_dir.mkdir(parents=True, exist_ok=True)
        if problem is None:
            atomic_write_json(run_dir / "config.json", {**cfg.to_dict(), "data": data_name}, indent=1)
    else:
        run_dir = None
    return dist.broadcast_object((run_dir, problem))


def train(cfg: TrainConfig, resume: str | Path | None = None,
          callbacks: Sequence[StepCallback] = (), resume_checkpoint: str | None = None) -> Path:
    """Set a run up (or resume it) and train it; the run folder."""
    try:
        run_dir = setup(cfg, resume, resume_checkpoint).fit(callbacks)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()
    return run_dir
