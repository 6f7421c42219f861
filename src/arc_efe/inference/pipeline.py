"""Answering one task: views -> (test-time training) -> candidates -> scores -> two attempts.

For each test input, every view of the task (`task_views`: the identity first, then the
other dihedral transforms, each with a random colour permutation that keeps the background
and a shuffled demonstration order) is decoded, greedily or depth first (`decoding`), and
each candidate is mapped back through the view's inverse. Distinct candidates are then
scored under every view (teacher forcing) and ranked (`selection`): product of experts plus
votes. The two best become attempt_1 and attempt_2.

Full-size tasks: a prompt holds every demonstration up to `max_len` tokens (evaluate's
`--max-context`, 8192 by default: every ARC-AGI-1 evaluation task but a few fits), so a task's
context is as long as the task needs; past it, demonstrations are dropped longest first and
`OutputResult.dropped` counts them. Every test output gets at least one candidate: greedy
decoding always ends in a well-formed grid, and when no prompt fits at all (a `max_len`
smaller than the query itself) the fallback answers the test input as it is (or a blank grid
of the size the demonstrations agree on), and `OutputResult.fallback` says why.

Solver2 joins through `memory_fn`: given the prompts of a batch, it returns the gated
readout of the memory bank for each, which is added to the prompt's embeddings both when
candidates are decoded and when they are scored.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.sequences import view_prompt
from ..data.tasks import MAX_SIDE, Grid, Task, answer_shape
from ..data.views import View, random_view, rule_colours, rule_keeping_view
from ..model.policy import Policy, greedy_in_batches
from .decoding import dfs_candidates, prompt_logliks
from .selection import Candidate, grid_key, rank
from .ttt import TestTimeTrainer, TTTStats

MAX_CONTEXT = 8192  # tokens of a prompt with its answer: a 30x30 test input with its demonstrations
TOO_LONG = "the query alone is longer than the context"  # OutputResult.fallback
NOTHING_DECODED = "decoding kept no answer"
MemoryFn = Callable[[Sequence[Sequence[int]]], "torch.Tensor | None"]

VIEW_KINDS = ("all", "rule")


@dataclass
class InferenceConfig:
    views: int = 8  # views decoded (and used as scoring experts) per test input
    view_kind: str = "all"  # "all" (dihedral x colours x order) or "rule" (views.rule_keeping_view)
    decoder: str = "dfs"  # "dfs" (depth first, --min-prob) or "greedy"
    min_prob: float = 0.1  # depth-first search keeps completions at least this probable
    max_candidates: int = 8  # per view
    max_scored: int = 16  # distinct candidates scored under every view (most voted first)
    vote_weight: float = 1.0
    shape_rule: bool = True  # decode only answers of the size every demonstration agrees on (data.answer_shape)
    max_side: int = MAX_SIDE
    max_len: int = MAX_CONTEXT
    seed: int = 0
    in_context: bool = True  # prompts hold the demonstrations; False: the test input alone (task_vectors.py)

    def __post_init__(self) -> None:
        if self.max_len < 64:
            raise ValueError(f"--max-context must be at least 64 tokens, got {self.max_len}")
        if self.views < 1:
            raise ValueError(f"--views must be at least 1, got {self.views}")
        if self.view_kind not in VIEW_KINDS:
            raise ValueError(f"answer views must be one of {', '.join(VIEW_KINDS)}, got {self.view_kind!r}")
        if self.decoder not in ("dfs", "greedy"):
            raise ValueError(f"decoder must be dfs or greedy, got {self.decoder!r}")
        if not 0.0 < self.min_prob <= 1.0:
            raise ValueError(f"--min-prob must be in (0, 1], got {self.min_prob}")


@dataclass
class OutputResult:
    """The ranked candidates of one test output and the two attempts."""
    candidates: list[Candidate]
    dropped: int = 0  # demonstrations left out of the task-as-it-is prompt to fit max_len
    fallback: str | None = None  # why the candidates come from the fallback, not from decoding

    @property
    def attempts(self) -> list[Grid]:
        return [c.grid for c in self.candidates[:2]]


@dataclass
class TaskResult:
    task_id: str
    outputs: list[OutputResult]
    seconds: float = 0.0
    ttt: TTTStats = field(default_factory=TTTStats)


def task_views(task: Task, n: int, seed: int = 0, kind: str = "all") -> list[View]:
    """`n` views of `task`, the identity first; deterministic for (seed, task id). `kind`
    "all": each of the eight orientations in turn, colours and demonstration order at
    random; "rule": the grids keep their orientation and only the colours the rule does not
    seem to act on are permuted (`rule_keeping_view`), for a model that cannot yet read a
    rule in context and so answers only in the frame it trained on."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"views:{seed}:{task.id}".encode()).digest()[:8],
                                               "little"))
    views = [View()]
    fixed = rule_colours(task.train) if kind == "rule" else None
    for i in range(1, n):
        if kind == "rule":
            views.append(rule_keeping_view(rng, len(task.train), fixed))
            continue
        v = random_view(rng, len(task.train))
        views.append(View(i % 8, v.colours, v.demo_order))
    return views


def fallback_answer(task: Task, test_index: int) -> Grid:
    """The answer when the model cannot write one: the test input as it is, or a blank grid of
    the size every demonstration agrees on when that differs."""
    grid = task.test[test_index].input
    shape = answer_shape(task.train, grid)
    if shape is None or tuple(shape) == grid.shape:
        return grid.copy()
    return np.zeros(shape, dtype=grid.dtype)


def _decode(policy: Policy, prompts: list[list[int]], memory: torch.Tensor | None,
            cfg: InferenceConfig, shapes: list[tuple[int, int] | None]) -> list[list[Grid]]:
    """Candidates of each prompt (in the view's frame, of shapes[k] when known). Depth-first
    search per prompt; the prompts where nothing clears min_prob (and all of them with the
    greedy decoder) get their greedy answer, decoded together in one batch."""
    found: list[list[Grid]] = [[] for _ in prompts]
    if cfg.decoder == "dfs":
        for k, prompt in enumerate(prompts):
            mem = None if memory is None else memory[k:k + 1]
            found[k] = [d.grid for d in dfs_candidates(policy, prompt, cfg.min_prob, cfg.max_candidates,
                                                       cfg.max_side, mem, shape=shapes[k])]
    todo = [k for k in range(len(prompts)) if not found[k]]
    got = greedy_in_batches(policy, [prompts[k] for k in todo], None if memory is None else memory[todo],
                            cfg.max_side, [shapes[k] for k in todo])
    for k, grid in zip(todo, got):
        found[k] = [] if grid is None else [grid]
    return found


def solve_output(policy: Policy, task: Task, test_index: int, views: Sequence[View], cfg: InferenceConfig,
                 memory_fn: MemoryFn | None = None) -> OutputResult:
    """Candidates for one test output from every view, scored under every view, ranked."""
    encoded = [(v, e, shape) for v in views
               for e, shape in [view_prompt(task.train, task.test[test_index].input, v, cfg.max_len,
                                            cfg.in_context, cfg.shape_rule)] if e is not None]
    if not encoded:
        return OutputResult([Candidate(fallback_answer(task, test_index))], len(task.train), TOO_LONG)
    prompts = [(v, e.prompt) for v, e, _ in encoded]
    memory = memory_fn([p for _, p in prompts]) if memory_fn is not None else None
    found: dict[tuple, Candidate] = {}
    shapes = [shape for _, _, shape in encoded]
    decoded = _decode(policy, [p for _, p in prompts], memory, cfg, shapes)
    for (view, _), grids in zip(prompts, decoded):
        for grid in grids:
            grid = view.invert_grid(grid)
            cand = found.setdefault(grid_key(grid), Candidate(grid, from_memory=memory is not None))
            cand.votes += 1
    fallback = None
    if not found:  # cannot happen with a grid-constrained greedy answer; kept so no output goes empty
        grid = fallback_answer(task, test_index)
        found[grid_key(grid)], fallback = Candidate(grid, from_memory=memory is not None), NOTHING_DECODED
    # Score the most voted candidates under every view: the product of experts. Each view's
    # prompt runs once and all candidates share its key/value cache.
    scored = sorted(found.values(), key=lambda c: (-c.votes, grid_key(c.grid)))[: cfg.max_scored]
    for k, (view, prompt) in enumerate(prompts):
        mem = None if memory is None else memory[k:k + 1]
        for cand, lik in zip(scored, prompt_logliks(policy, prompt, [view.apply_grid(c.grid) for c in scored], mem)):
            cand.logliks.append(lik.logprob)
            cand.entropies.append(lik.entropy)
            cand.tokens = lik.tokens
    return OutputResult(rank(scored, cfg.vote_weight), encoded[0][1].dropped, fallback)


def solve_task(policy: Policy, task: Task, cfg: InferenceConfig, trainer: TestTimeTrainer | None = None,
               memory_fn: MemoryFn | None = None) -> TaskResult:
    """Two attempts for every test output of `task` (test-time training first when given)."""
    start = time.time()
    views = task_views(task, cfg.views, cfg.seed, cfg.view_kind)
    was_training = policy.training
    policy.eval()
    try:
        if trainer is None:
            outputs = [solve_output(policy, task, i, views, cfg, memory_fn) for i in range(len(task.test))]
            stats = TTTStats()
        else:
            with trainer.adapted(task) as stats:
                outputs = [solve_output(policy, task, i, views, cfg, memory_fn) for i in range(len(task.test))]
    finally:
        policy.train(was_training)
    return TaskResult(task.id, outputs, time.time() - start, stats)
