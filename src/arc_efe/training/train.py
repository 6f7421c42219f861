"""Training: setup() builds everything, fit() runs the loop, one phase after another.

Each optimizer step: set the learning rate; build the step's micro-batches (each query seen
through a random view, a second view for the consistency term, and its inverse task for the
bidirectional term); forward and backward each micro-batch with the loss normalised per
answer token over the whole step; clip; step (or skip a non-finite step, and roll back after
too many: guard.py); log; call the step callbacks; a checkpoint every --save-every-steps, and
on SIGINT/SIGTERM before stopping (stopping.py). Each epoch: training and validation accuracy,
the report in the users' words, the diagnosis, a checkpoint. At the end: the HTML run report
(report.py).
"""

from __future__ import annotations

import errno
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

from ..data.dataset import Query
from ..data.files import atomic_write_json
from ..data.packing import make_batch
from ..data.sequences import Example, aligned_cells, forward_example, inverse_example
from ..data.tokens import VOCAB_SIZE, SequenceTooLong
from ..data.views import View, random_view
from ..errors import ArcEfeError
from ..loss import COMPONENTS, EFELoss, risk_sum
from ..model import distributed as dist
from ..model.agent import Agent
from ..model.backbone import BackboneConfig, backbone_parameters, head_parameters, load_backbone, trainable_summary
from ..model.compiling import compile_backbone
from ..model.device import autocast, default_dtype
from ..model.sharding import NOT_LAUNCHED, gathered, shard_backbone
from ..saved.checkpoint import (Position, abandon_newer, clean_partial, disk_full, find_checkpoint, list_checkpoints,
                                load_checkpoint)
from ..saved.config import TrainConfig
from ..saved.modelfolder import model_source
from ..solver2.memory import MemoryBank
from ..solver2.refinement import corrupt, draft_tokens_for, refine_example
from ..solver2.retrieval import MemoryWriter, Solver2, task_keys
from .epoch_report import end_of_epoch, report_after_training
from .guard import LoopState, after_step, checkpoint, guarded_step
from .metrics import MetricsLog, NullLog
from .stopping import StopRequests, TrainingStopped
from .trainset import TrainingData, load_training_data

LN_V = math.log(VOCAB_SIZE)
LN_2 = math.log(2)


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
class Run:
    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    dtype: torch.dtype
    agent: Agent
    loss_fn: EFELoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    data: TrainingData
    log: MetricsLog
    pos: Position
    steps_per_epoch: int
    solver2: Solver2 | None = None
    bank: MemoryBank | None = None
    writer: MemoryWriter | None = None
    model: Agent | None = None  # the training step's agent when it differs (--compile); else `agent`
    units: list[torch.nn.Module] | None = None  # the backbone's FSDP units (--fsdp)
    state: LoopState = field(default_factory=LoopState)
    t_epoch: float = 0.0  # when the epoch in progress started (moved back by a resume)

    @property
    def queries(self) -> list[Query]:
        return self.data.queries

    @property
    def eval_queries(self) -> list[Query]:
        return self.data.eval_queries

    @property
    def val_queries(self) -> list[Query]:
        return self.data.val_queries


@dataclass
class MicroBatch:
    queries: list[Query]
    views: list[View]  # each query's training view (its first forward example)
    examples: list[Example]
    owner: list[int]  # query (index into `queries`) of each example
    pairs: list[tuple[int, int]]  # two forward examples of one query, for consistency
    first: list[int]  # each query's first forward example
    halt: list[tuple[int, int, bool]]  # refine examples: (example, halting position, draft right)


def _param_groups(cfg: TrainConfig, agent: Agent, loss_fn: EFELoss, solver2: Solver2 | None) -> list[dict]:
    """backbone (--qwen-lr), agent head (--agent-lr), Solver2 (2x), loss parameters (0.5x).

    Weight decay applies to matrices only (norm scales and biases are left alone).
    """
    groups = []
    named = [("backbone", backbone_parameters(agent.backbone), cfg.backbone_lr),
             ("agent", head_parameters(agent.backbone), cfg.agent_lr),
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


def setup(cfg: TrainConfig, resume: str | Path | None = None, resume_checkpoint: str | None = None) -> Run:
    torch.manual_seed(cfg.seed)
    device = dist.init(cfg.device)  # under torchrun: this rank's device, process group started
    dtype = default_dtype(device)
    data = load_training_data(cfg)
    for reason in data.skipped:
        dist.print0(f"skipped: {reason}")

    # Trained weights stay in float32 (bf16 autocast does the GPU math); weights that never
    # change (a frozen or LoRA base) are held in the compute dtype to halve their memory.
    weight_dtype = dtype if cfg.mode in ("frozen", "lora") else torch.float32
    init = None
    if cfg.init and resume is None:  # a resumed run takes its weights from its checkpoint
        init = model_source(cfg.init).weights  # verified against its manifest
        dist.print0(f"init: the weights of {cfg.init}")
    backbone = load_backbone(BackboneConfig(model_name=cfg.model_name, mode=cfg.mode,
                                            lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                            positions=cfg.positions, init=init),
                             device, weight_dtype)
    for p in head_parameters(backbone):  # the head always learns: keep it in float32
        p.data = p.data.float()
    if cfg.grad_checkpointing:  # non-reentrant: works with a frozen embedding (LoRA) as well
        # transformers 5 renamed gradient_checkpointing_enable (deprecated) to activation_checkpointing_enable
        enable = getattr(backbone, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.fsdp and not dist.launched():
        raise ArcEfeError(NOT_LAUNCHED)
    agent = Agent(backbone)
    model = None
    if cfg.compile:  # the training step alone runs compiled; saving and decoding use `agent`
        compiled, warning = compile_backbone(backbone, device)
        if warning:
            dist.print0(warning)
        else:
            model = Agent(compiled)
    hidden = backbone.get_input_embeddings().embedding_dim
    solver2 = None
    if cfg.memory or cfg.solver2_steps > 1:
        solver2 = Solver2(hidden, top_k=cfg.memory_top_k, steps=cfg.solver2_steps).to(device)
    bank = MemoryBank(hidden, cfg.memory_capacity) if cfg.memory else None
    loss_fn = EFELoss(**{f"{k}_weight": v for k, v in cfg.weights.items()},
                      label_smoothing=cfg.label_smoothing)
    dist.sync_parameters([m for m in (agent, solver2, loss_fn) if m is not None])
    units = shard_backbone(backbone) if cfg.fsdp else None  # after the sync: plain tensors there
    optimizer = torch.optim.AdamW(_param_groups(cfg, agent, loss_fn, solver2), betas=(0.9, 0.95))
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
        pos, loaded_bank, saved_state = load_checkpoint(ckpt, agent.backbone, optimizer, scheduler, solver2,
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
        writer = MemoryWriter(agent, solver2, bank, cfg.success_threshold, cfg.max_len, device)

    generated = "".join(f" + {s.name} (generated)" for s in data.synthetic)
    dist.print0(f"data: {data.name}: {data.n_fit_tasks} training tasks ({len(data.queries)} queries){generated}, "
                f"{data.n_val_tasks} validation tasks")
    dist.print0(f"model: {cfg.model_name} ({cfg.mode}) on {device}, {trainable_summary(backbone)}")
    if cfg.mode == "frozen":
        dist.print0("warning: the Qwen backbone is frozen: only the output head will learn "
                    "(use --no-freeze-qwen to train it)")
    if bank is not None:
        dist.print0(f"Solver2 memory: on (top {cfg.memory_top_k}, success rule: {cfg.success_threshold}, "
                    f"{len(bank)} entries)")
    if dist.world_size() > 1:
        dist.print0(f"distributed: {dist.world_size()} ranks, each step {cfg.grad_accum_steps * dist.world_size()} "
                    f"micro-batches of {cfg.batch_size} queries")
    return Run(cfg, run_dir, device, dtype, agent, loss_fn, optimizer, scheduler, data,
               log, pos, steps_per_epoch, solver2, bank, writer, model, units, state)


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


def build_micro_batch(run: Run, epoch: int, b: int) -> MicroBatch:
    """Micro-batch b of an epoch (see trainset.TrainingData.query); its views come from an
    RNG seeded by (seed, epoch, b): a resumed run sees the same ones."""
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, epoch, b, 1])
    queries = [run.data.query(cfg, epoch, b, slot, rng) for slot in range(cfg.batch_size)]
    mb = MicroBatch(queries, [], [], [], [], [], [])
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
        target = view.apply_grid(q.target.output)
        for _ in range(cfg.solver2_steps - 1):
            # a right draft a quarter of the time, so the halting head sees both answers
            rate = 0.0 if rng.random() < 0.25 else float(rng.uniform(0.02, 0.3))
            draft = corrupt(target, rate, rng)
            r = refine_example(base, draft_tokens_for(draft), target, draft)
            mb.halt.append((add(k, r.example), r.halt_pos, r.draft_right))
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
    counts = {"answer": 0, "consistency": 0, "inverse": 0, "refine": 0, "halt": 0}
    for mb in micro[:n_real]:
        for e in mb.examples:
            counts[{"forward": "answer", "inverse": "inverse", "refine": "refine"}[e.kind]] += e.answer_len
        counts["consistency"] += sum(len(mb.examples[i].cell_pos) for i, _ in mb.pairs)
        counts["halt"] += len(mb.halt)
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
            # the halting head reads hidden states
            out = agent(batch.input_ids, hidden=bool(mb.halt), memory=batch.spread(memory),
                        **batch.model_inputs())
            logits, hidden = out if mb.halt else (out, None)
        answer_logits = logits[batch.rows, batch.cols].float()
        kinds = [e.kind for e in mb.examples]
        idx = {kind: _segments(batch.offsets, mb.examples, [i for i, k in enumerate(kinds) if k == kind],
                               run.device) for kind in ("forward", "inverse", "refine")}
        step_term = None
        if mb.halt:
            step_term = _step_term(run, answer_logits, batch, hidden, idx["refine"], mb, counts)
        out = run.loss_fn(answer_logits[idx["forward"]], batch.targets[idx["forward"]],
                          consistency=aligned_cells(answer_logits, batch.offsets, mb.examples, mb.pairs),
                          inverse=(answer_logits[idx["inverse"]], batch.targets[idx["inverse"]]),
                          step=step_term, counts=counts)
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
    totals = dist.sum_floats([loss_value, tokens, result.retrieved, *components.values()], run.device)
    loss_value, tokens, result.retrieved = totals[0], int(totals[1]), int(totals[2])
    components = dict(zip(components, totals[3:]))
    grad_norm, finite = guarded_step(run, params, loss_value)  # clip; skip a non-finite step
    result.skipped = not finite
    stats = {"loss": loss_value, "components": components, "grad_norm": grad_norm,
             "tokens": tokens, "skipped": not finite}
    return stats, result


def _step_term(run: Run, answer_logits: torch.Tensor, batch, hidden: torch.Tensor, refine_idx: torch.Tensor,
               mb: MicroBatch, counts: dict[str, int]) -> torch.Tensor:
    """Refinement: the risk of the revised answers plus the halting head's binary
    cross-entropy (/ ln 2, so a coin-flip head scores 1), each per token / per draft of the step."""
    risk = risk_sum(answer_logits[refine_idx], batch.targets[refine_idx]) / max(counts["refine"], 1)
    places = [batch.place(i, p) for i, p, _ in mb.halt]
    rows = torch.tensor([r for r, _ in places], device=run.device)
    cols = torch.tensor([c for _, c in places], device=run.device)
    target = torch.tensor([float(r) for _, _, r in mb.halt], device=run.device)
    halt_logit = run.solver2.halt(hidden[rows, cols].float()).squeeze(-1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(halt_logit, target, reduction="sum")
    return risk + bce / (LN_2 * max(counts["halt"], 1))


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
            run.writer.adds, run.writer.queries = state.memory_adds, state.memory_queries
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
