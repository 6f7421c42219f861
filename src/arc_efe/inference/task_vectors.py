"""Joint training of single pairs with a learned vector per task and view (the mdlARC design).

Instead of a whole task in context, each training sequence is one demonstration pair,
`BOS IN input OUT output END`, and a learned vector added to every token's embedding says
which task (and which view of it) the pair belongs to. The model learns all the tasks being
answered together from their demonstrations (never a test input or output), and a task's
rule lives in its vectors; a step is far cheaper than a task in context, since a sequence
holds one pair instead of all of them.

Views: a rule changes under a view (a horizontal flip seen transposed is a vertical one), so
every task has one vector per view, for the views `pipeline.task_views` gives it (the task as
it is first); training draws (task, view, pair) at random, and answering decodes the test
input under each view with that view's vector, maps back and votes, as `pipeline` does with
demonstrations in context. The vectors enter where Solver2's readout does (the Policy's
`memory`): one vector per sequence, added to every input embedding.

Use (a benchmark compares it with per-task and in-context joint training at equal time):

    vectors = TaskVectors(tasks, views=8, hidden=H)
    fit_pairs(policy, vectors, steps=10**6, seconds=600)
    cfg = InferenceConfig(views=8, in_context=False)   # prompts without demonstrations
    result = solve_task(policy, task, cfg, memory_fn=vectors.memory_fn(task))
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.packing import make_batch
from ..data.sequences import Example
from ..data.tasks import Task
from ..data.tokens import encode_task
from ..model.policy import Policy
from ..model.device import autocast
from .pipeline import MemoryFn, task_views
from .ttt import TTTStats


class TaskVectors(nn.Module):
    """One learned vector per (task, view); `views` per task, from `task_views(task, views, seed)`."""

    def __init__(self, tasks: Sequence[Task], views: int, hidden: int, seed: int = 0, std: float = 0.02):
        super().__init__()
        self.tasks = list(tasks)
        self.index = {t.id: k for k, t in enumerate(self.tasks)}
        self.n_views = views
        self.views = [task_views(t, views, seed, "all") for t in self.tasks]
        self.table = nn.Parameter(torch.randn(len(self.tasks) * views, hidden) * std)

    def rows(self, task: Task) -> torch.Tensor:
        k = self.index[task.id]
        return self.table[k * self.n_views:(k + 1) * self.n_views]

    def examples(self) -> list[tuple[Example, int]]:
        """Every training sequence with its vector's row: each demonstration pair under each
        view of its task, alone (no other pair in context)."""
        out = []
        for k, (task, views) in enumerate(zip(self.tasks, self.views)):
            for v, view in enumerate(views):
                for pair in task.train:
                    enc = encode_task([], view.apply_grid(pair.input), view.apply_grid(pair.output))
                    out.append((Example(enc.tokens, len(enc.prompt), len(enc.answer)), k * self.n_views + v))
        return out

    def memory_fn(self, task: Task) -> MemoryFn:
        """The vectors of `task`'s views, one per prompt, in the order of `task_views`."""
        rows = self.rows(task).detach()

        def memory(prompts):
            if len(prompts) != self.n_views:
                raise ValueError(f"task {task.id}: {len(prompts)} prompts for {self.n_views} view vectors")
            return rows

        return memory


def fit_pairs(policy: Policy, vectors: TaskVectors, steps: int, seconds: float | None, lr: float = 1e-3,
              vector_lr: float = 1e-2, max_tokens: int = 8192, batch: int = 16, seed: int = 0) -> TTTStats:
    """Train the backbone and the vectors on single pairs of every task (the risk term)."""
    pool = vectors.examples()
    if not pool or steps <= 0:
        return TTTStats()
    device = next(policy.backbone.parameters()).device
    dtype = next(policy.backbone.parameters()).dtype
    vectors.to(device)
    params = list(policy.backbone.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": [vectors.table], "lr": vector_lr}],
                            weight_decay=0.0)
    rng = np.random.default_rng(seed)
    start = time.time()
    losses: list[float] = []
    policy.train()
    for _ in range(steps):
        if seconds is not None and time.time() - start >= seconds:
            break
        chosen, tokens = [], 0
        for k in rng.integers(len(pool), size=batch):
            example, row = pool[int(k)]
            if chosen and tokens + len(example.tokens) > max_tokens:
                break
            chosen.append((example, row))
            tokens += len(example.tokens)
        b = make_batch([e for e, _ in chosen], None).to(device)
        memory = b.spread(vectors.table[torch.tensor([r for _, r in chosen], device=device)])
        with autocast(device, dtype):
            logits = policy(b.input_ids, memory=memory, **b.model_inputs())
        loss = F.cross_entropy(logits[b.rows, b.cols].float(), b.targets) / math.log(logits.shape[-1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params + [vectors.table], 1.0)
        opt.step()
        losses.append(loss.item())
    policy.eval()
    return TTTStats.of(losses, start)
