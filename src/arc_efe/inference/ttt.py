"""Test-time training: fit the model to one task's demonstrations, answer, then forget.

For each task the model trains for `steps` optimizer steps (or until `seconds` run out) on
the task's own demonstrations, leave-one-out: each demonstration in turn is the query and
the others are its context, every time under a random view (dihedral x colour permutation
x demonstration order), so a few pairs become many distinct training sequences and the
model is pushed towards the rule rather than the pixels. The loss is the EFE risk term
(cross-entropy of the answer tokens). Sequences get the same context as answering
(`max_len`, every demonstration of a full-size task); a step takes up to `batch` of them
but stops adding once `max_tokens` would be passed (one at least), so a step of a 30x30
task costs a few seconds on a CPU rather than a minute.

What trains, `mode`:
- `full`: every weight, for small backbones (from-scratch systems learn each task this
  way). The weights are copied before and copied back after each task, so the model
  leaves bit-identical.
- `lora`: a fresh LoRA adapter (`rank`) on the attention and MLP projections, reset for
  every task; the base weights never receive a gradient. A backbone that already carries
  a trained adapter keeps it active underneath the new one.
- `auto` (default): `full` up to FULL_MAX_PARAMS weights, `lora` above.

Use:

    trainer = TestTimeTrainer(policy, TTTConfig(steps=32))
    with trainer.adapted(task) as stats:
        ... decode with `policy` ...
    trainer.close()  # removes the adapter layers (lora)

Joint training (`fit_jointly`, evaluate's `--joint-seconds`): before any task is answered, the
model trains on the demonstrations of all the tasks being answered together (leave-one-out
queries under views, never a test output), and each task's own test-time training, if any,
then starts from there. What this is worth against per-task training at equal CPU time is
measured by benchmarks/joint_training.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Query, make_queries
from ..data.packing import make_batch
from ..data.sequences import Example, forward_example
from ..data.tasks import Task
from ..data.tokens import SequenceTooLong
from ..data.views import random_view, rule_colours, rule_keeping_view
from ..model.policy import Policy
from ..model.backbone import is_peft
from ..model.device import autocast
from ..solver2.recall import Recall

FULL_MAX_PARAMS = 100_000_000
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TTT_ADAPTER = "ttt"
# Views of the demonstrations while training on them (keyword arguments of random_view):
# every view (dihedral x colours x demonstration order), without colour permutation,
# without dihedral transforms, only the demonstration order; and "rule" (views.rule_keeping_view:
# no dihedral transform, only the colours the rule does not seem to act on permuted).
TTT_VIEWS = {"all": {}, "geometry": {"colours": False}, "colours": {"dihedral": False},
             "order": {"dihedral": False, "colours": False}, "rule": None}


@dataclass
class TTTConfig:
    steps: int = 0  # optimizer steps per task; 0 turns test-time training off
    lr: float = 1e-3
    rank: int = 16  # LoRA rank (lora mode)
    mode: str = "auto"  # "auto", "full" or "lora"
    batch: int = 8  # sequences per step
    seconds: float | None = None  # wall-clock budget per task; stops early when spent
    max_len: int = 8192  # tokens of one sequence, as in answering (pipeline.MAX_CONTEXT)
    max_tokens: int = 8192  # tokens of one step: fewer than `batch` sequences when they are long
    seed: int = 0
    views: str = "all"  # what varies between training sequences: see TTT_VIEWS
    recall_k: int = 2  # with a Recall (Solver2's memory): at most this many solved training tasks trained on too
    recall_share: float = 0.25  # the share of sequences drawn from them
    recall_search: int = 4  # stored tasks nearest by key that are checked (Recall.helpful)
    recall_gain: float | None = 0.01  # the mean loss fall a checked task must give; None: no check, the k nearest

    def __post_init__(self) -> None:
        if self.recall_k < 0 or not 0.0 <= self.recall_share < 1.0:
            raise ValueError(f"memory recall needs k >= 0 and a share in [0, 1), got {self.recall_k} and "
                             f"{self.recall_share}")
        if self.recall_search < self.recall_k or (self.recall_gain is not None and self.recall_gain < 0):
            raise ValueError(f"memory recall checks at least k stored tasks for a gain >= 0, got "
                             f"{self.recall_search} for k {self.recall_k} and gain {self.recall_gain}")
        if self.views not in TTT_VIEWS:
            raise ValueError(f"test-time training views must be one of {', '.join(TTT_VIEWS)}, got {self.views!r}")
        if self.mode not in ("auto", "full", "lora"):
            raise ValueError(f"test-time training mode must be auto, full or lora, got {self.mode!r}")
        if self.steps < 0 or self.batch < 1 or self.rank < 1 or self.lr <= 0 or self.max_tokens < 1:
            raise ValueError("test-time training needs steps >= 0, batch >= 1, rank >= 1, lr > 0 and max_tokens >= 1")

    @property
    def enabled(self) -> bool:
        return self.steps > 0


@dataclass
class TTTStats:
    steps: int = 0
    first_loss: float | None = None
    last_loss: float | None = None  # mean of the last few steps' losses
    seconds: float = 0.0
    recalled: tuple[str, ...] = ()  # the solved training tasks trained on with this task (Solver2's memory)
    checked: tuple[str, ...] = ()  # the stored tasks nearest by key that were checked for it

    @classmethod
    def of(cls, losses: list[float], start: float) -> "TTTStats":
        """The summary of a training run: its step losses and when it started (time.time())."""
        return cls(len(losses), losses[0] if losses else None,
                   float(np.mean(losses[-4:])) if losses else None, time.time() - start)


def _task_seed(seed: int, task_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:8], "little")


class TestTimeTrainer:
    __test__ = False  # not a pytest test class despite its name

    def __init__(self, policy: Policy, cfg: TTTConfig, joint: bool = False, recall: Recall | None = None):
        """`joint`: `fit_jointly` will train too (so a lora adapter is needed even without per-task steps).
        `recall`: Solver2's solved training tasks; each task also trains on the nearest that pass the check."""
        self.policy = policy
        self.cfg = cfg
        self.recall = recall
        n_params = sum(p.numel() for p in policy.backbone.parameters())
        self.mode = cfg.mode if cfg.mode != "auto" else ("full" if n_params <= FULL_MAX_PARAMS else "lora")
        self._requires_grad = {n: p.requires_grad for n, p in policy.backbone.named_parameters()}
        self._wrapped = False
        self._adapter = self.mode == "lora" and (cfg.enabled or joint)
        if self._adapter:
            self._add_adapter()
        self.params = self._trainable()
        self._initial = [p.detach().clone() for p in self.params]

    # --- what trains ------------------------------------------------------------------
    def _add_adapter(self) -> None:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=self.cfg.rank, lora_alpha=self.cfg.rank, lora_dropout=0.0,
                          target_modules=list(LORA_TARGETS))
        backbone = self.policy.backbone
        with warnings.catch_warnings():
            # peft 0.21 calls a method transformers 5 deprecates; nothing for our users to do.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            if is_peft(backbone):
                self._previous_adapter = backbone.active_adapter
                backbone.add_adapter(TTT_ADAPTER, lora)
                backbone.base_model.set_adapter([self._previous_adapter, TTT_ADAPTER])
            else:
                self.policy.backbone = get_peft_model(backbone, lora, adapter_name=TTT_ADAPTER)
                self._wrapped = True

    def _trainable(self) -> list[nn.Parameter]:
        named = list(self.policy.backbone.named_parameters())
        if self.mode == "full":
            return [p for _, p in named]
        marker = f".{TTT_ADAPTER}."
        for n, p in named:
            p.requires_grad_(marker in n)
        return [p for n, p in named if marker in n]

    def close(self) -> None:
        """Remove the adapter layers (lora) and restore which weights were trainable."""
        if self._adapter:
            backbone = self.policy.backbone
            if self._wrapped:
                self.policy.backbone = backbone.unload()
            else:
                backbone.base_model.set_adapter(self._previous_adapter)
                backbone.delete_adapter(TTT_ADAPTER)
        for n, p in self.policy.backbone.named_parameters():
            if n in self._requires_grad:
                p.requires_grad_(self._requires_grad[n])

    # --- one task ---------------------------------------------------------------------
    @contextlib.contextmanager
    def adapted(self, task: Task) -> Iterator[TTTStats]:
        """Train on `task`'s demonstrations, yield, then put the weights back."""
        if not self.cfg.enabled:
            yield TTTStats()
            return
        try:
            yield self._train(task)
        finally:
            with torch.no_grad():
                for p, p0 in zip(self.params, self._initial):
                    p.copy_(p0)
            self.policy.eval()

    def _example(self, query: Query, rng: np.random.Generator, fixed) -> Example | None:
        """One leave-one-out training sequence of a demonstration under a random view."""
        try:
            if self.cfg.views == "rule":
                view = rule_keeping_view(rng, len(query.context), fixed)
            else:
                view = random_view(rng, len(query.context), **TTT_VIEWS[self.cfg.views])
            return forward_example(query, view, self.cfg.max_len)
        except SequenceTooLong:
            return None

    def _examples(self, task: Task, rng: np.random.Generator, recalled: Sequence[Query] = ()) -> list[Example]:
        """A step's sequences: leave-one-out queries of `task`, and a `recall_share` of them from
        the recalled tasks (their leave-one-out queries and their solved query)."""
        queries = make_queries([task], "train")
        fixed = rule_colours(task.train) if self.cfg.views == "rule" else None
        extra = [(make_queries([q.task], "train") + [q], rule_colours(q.task.train) if fixed is not None else None)
                 for q in recalled]

        def draw() -> Example | None:
            if extra and rng.random() < self.cfg.recall_share:
                pool, colours = extra[int(rng.integers(len(extra)))]
                return self._example(pool[int(rng.integers(len(pool)))], rng, colours)
            return self._example(queries[int(rng.integers(len(queries)))], rng, fixed)

        return self._fill(draw)

    def _fill(self, draw: Callable[[], Example | None]) -> list[Example]:
        """Up to `batch` drawn sequences, stopping before `max_tokens` would be passed (one at least)."""
        out, tokens = [], 0
        for _ in range(self.cfg.batch):
            example = draw()
            if example is None:
                continue
            if out and tokens + len(example.tokens) > self.cfg.max_tokens:
                break  # the step is full
            out.append(example)
            tokens += len(example.tokens)
        return out

    def _train(self, task: Task) -> TTTStats:
        if len(task.train) < 2:
            return TTTStats()  # leave-one-out needs two demonstrations
        start = time.time()  # the memory's check is part of the task's seconds
        rng = np.random.default_rng(_task_seed(self.cfg.seed, task.id))
        checked, recalled = self._recall(task)
        stats = self._fit(lambda: self._examples(task, rng, recalled), self.cfg.steps, self.cfg.seconds, start)
        stats.recalled, stats.checked = tuple(q.task.id for q in recalled), tuple(q.task.id for q in checked)
        return stats

    def _recall(self, task: Task) -> tuple[list[Query], list[Query]]:
        """(the stored tasks checked for `task`, those trained on with it): Solver2's memory."""
        cfg = self.cfg
        if self.recall is None or cfg.recall_k == 0:
            return [], []
        if cfg.recall_gain is None:
            near = self.recall.nearest(self.policy, task, cfg.recall_k, cfg.max_len)
            return [], near
        near = self.recall.nearest(self.policy, task, cfg.recall_search, cfg.max_len)
        return near, self.recall.helpful(self.policy, task, near, cfg.max_len, cfg.recall_gain)[:cfg.recall_k]

    def _fit(self, draw: Callable[[], list[Example]], steps: int, seconds: float | None,
             start: float | None = None) -> TTTStats:
        """Optimizer steps on drawn sequences (the EFE risk term) until `steps` or `seconds`
        (counted from `start`, by default now) run out."""
        start = time.time() if start is None else start
        policy = self.policy
        device = next(policy.backbone.parameters()).device
        dtype = next(policy.backbone.parameters()).dtype
        for p in self.params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=0.0)
        losses: list[float] = []
        policy.train()
        for _ in range(steps):
            if seconds is not None and time.time() - start >= seconds:
                break
            examples = draw()
            if not examples:
                break  # no demonstration fits max_len
            batch = make_batch(examples, None).to(device)  # one packed row: sequences of any lengths
            with autocast(device, dtype):
                logits = policy(batch.input_ids, **batch.model_inputs())
            loss = F.cross_entropy(logits[batch.rows, batch.cols].float(), batch.targets) / math.log(logits.shape[-1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            opt.step()
            losses.append(loss.item())
        policy.eval()
        return TTTStats.of(losses, start)

    # --- all tasks together -----------------------------------------------------------
    def fit_jointly(self, tasks: Sequence[Task], steps: int, seconds: float | None) -> TTTStats:
        """Train on the demonstrations of all `tasks` together and keep the result.

        Each step draws sequences of tasks picked at random (every task equally often), each a
        leave-one-out query of that task's demonstrations under a random view: no test input
        or output is ever in a sequence. The weights reached become the start of every task's
        own test-time training (`adapted` goes back to them after each task)."""
        pool = [(make_queries([t], "train"), rule_colours(t.train) if self.cfg.views == "rule" else None)
                for t in tasks if len(t.train) >= 2]
        if not pool or steps <= 0:
            return TTTStats()
        rng = np.random.default_rng(_task_seed(self.cfg.seed, "joint:" + ",".join(t.id for t in tasks)))

        def draw_one() -> Example | None:
            queries, fixed = pool[int(rng.integers(len(pool)))]
            return self._example(queries[int(rng.integers(len(queries)))], rng, fixed)

        stats = self._fit(lambda: self._fill(draw_one), steps, seconds)
        self._initial = [p.detach().clone() for p in self.params]
        return stats

    def joint_state(self) -> dict[str, torch.Tensor]:
        """The trained weights (names as in the backbone), to save after `fit_jointly`."""
        ids = {id(p) for p in self.params}
        return {n: p.detach().cpu().contiguous() for n, p in self.policy.backbone.named_parameters() if id(p) in ids}

    def load_joint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Weights saved by `joint_state`: the start of every task's test-time training."""
        named = dict(self.policy.backbone.named_parameters())
        ids = {id(p) for p in self.params}
        wrong = sorted(n for n in state if n not in named or id(named[n]) not in ids or named[n].shape != state[n].shape)
        missing = sorted(n for n, p in named.items() if id(p) in ids and n not in state)
        if wrong or missing:
            raise ValueError(f"joint weights do not fit this model ({len(wrong)} unknown or of another shape, "
                             f"{len(missing)} missing; first: {(wrong + missing)[0]})")
        with torch.no_grad():
            for n, t in state.items():
                named[n].copy_(t.to(named[n].device, named[n].dtype))
        self._initial = [p.detach().clone() for p in self.params]
