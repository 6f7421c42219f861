"""Solver2's refinement (`steps` K > 1): the model sees a draft answer after the query and
writes a revised one: `... IN query OUT draft OUT answer END`. A halting head (`Solver2.halt`)
reads the hidden state at the second OUT and predicts whether the draft is already exactly
right. In training the draft is the target with cells recoloured at random (`corrupt`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.sequences import Example, view_pairs
from ..data.tasks import Grid, grids_equal
from ..data.tokens import OUT, PAD, answer_tokens, encode_task
from ..model.agent import decode_queries
from .retrieval import Solver2


def corrupt(grid: Grid, rate: float, rng: np.random.Generator) -> Grid:
    """A draft for refinement training: each cell recoloured at random with probability `rate`."""
    flip = rng.random(grid.shape) < rate
    noise = rng.integers(0, 10, size=grid.shape).astype(grid.dtype)
    return np.where(flip, noise, grid)


@dataclass
class RefineExample:
    example: Example
    halt_pos: int  # position of the second OUT: its hidden state sees the whole draft
    draft_right: bool


def refine_example(base: Example, draft_tokens: list[int], target: Grid, draft: Grid) -> RefineExample:
    """`base` (a forward example) with a draft and a second OUT inserted before its answer."""
    prompt = base.tokens[: base.answer_start]
    answer = base.tokens[base.answer_start:]
    tokens = prompt + draft_tokens + [OUT] + answer
    start = len(prompt) + len(draft_tokens) + 1
    ex = Example(tokens, start, len(answer), "refine", dropped=base.dropped,
                 context_end=base.context_end)
    return RefineExample(ex, start - 1, grids_equal(draft, target))


def draft_tokens_for(draft: Grid) -> list[int]:
    return answer_tokens(draft)[:-1]  # the draft's rows, without END: OUT follows


@torch.no_grad()
def solve_with_refinement(agent, solver2: Solver2, queries, view, max_len: int,
                          memory: torch.Tensor | None = None,
                          halt_at: float = 0.9) -> list[tuple[Grid | None, int]]:
    """Answers after up to `solver2.steps` drafts, and how many drafts each took.

    The first draft is the greedy answer; each further step shows the model its draft and
    lets it write a revised one, unless the halting head is at least `halt_at` sure that the
    draft is already right: then that query stops early.
    """
    drafts = decode_queries(agent, queries, view, max_len, memory)  # mapped back
    used = [1] * len(queries)
    active = [i for i, d in enumerate(drafts) if d is not None]
    device = solver2.gate.device
    for _ in range(solver2.steps - 1):
        if not active:
            break
        prompts = []
        for i in active:
            q = queries[i]
            enc = encode_task(view_pairs(q.context, view), view.apply_grid(q.target.input), None, max_len)
            prompts.append(enc.prompt + draft_tokens_for(view.apply_grid(drafts[i])) + [OUT])
        mem = None if memory is None else memory[active]
        batch_ids = torch.full((len(prompts), max(map(len, prompts))), PAD, dtype=torch.long)
        mask = torch.zeros_like(batch_ids)
        for r, p in enumerate(prompts):
            batch_ids[r, : len(p)] = torch.tensor(p)
            mask[r, : len(p)] = 1
        _, hidden = agent(batch_ids.to(device), mask.to(device), mem, hidden=True)
        last = torch.tensor([len(p) - 1 for p in prompts], device=device)
        sure = torch.sigmoid(solver2.halt(hidden[torch.arange(len(prompts), device=device), last].float()))
        revise = [(r, i) for r, i in enumerate(active) if float(sure[r]) < halt_at]
        if not revise:
            break
        new = agent.greedy([prompts[r] for r, _ in revise], None if mem is None else mem[[r for r, _ in revise]])
        for (r, i), grid in zip(revise, new):
            used[i] += 1
            if grid is not None:
                drafts[i] = view.invert_grid(grid)
        active = [i for _, i in revise]
    return list(zip(drafts, used))
