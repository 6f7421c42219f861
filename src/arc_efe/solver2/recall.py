"""Solver2 at evaluation: the solved training tasks most like a new task, trained on with it.

The memory bank (memory.py) fills during training with verified solutions: queries of
training tasks whose answer was exactly right, each stored with its task id, split, query
index and the data source the task came from. At evaluation (`arc-efe evaluate --memory
PATH`), `Recall` turns a saved bank back into those solved tasks, keys each one with the
model that answers (the task encoder of retrieval.py: its last hidden states pooled over the
demonstrations of the solved query) and, for each task being answered, finds the `k` stored
tasks whose keys are nearest to the key of that task's own demonstrations. A near key is not
the same rule (pooled keys of unlike ARC tasks are near too: README, Solver2), so each
candidate is checked first
(`Recall.helpful`): its pairs, put before the task's own demonstrations, must make the model
read every one of those demonstrations better (a lower loss on each leave-one-out query).
Test-time training (inference/ttt.py) then draws a share of its sequences from the tasks that
pass: their demonstrations, leave-one-out, and their solved queries.

What it never reads is an answer of a task being answered: entries of any task id of an ARC
evaluation set, or of the tasks being answered, are left out when the bank is read (ARC-AGI-2
training holds ARC-AGI-1 evaluation tasks), and a new task's key comes from its
demonstrations only. Entries of generated tasks are left out too: their tasks are not stored
and cannot be loaded again by id.

A bank can also be filled from evaluations (`bank_from_evaluations`, `arc-efe bank`): every
test output of a training task that an evaluation (test-time training, views, voting) got
right within its two attempts, checked again with the official scorer against the task's
answer. That is what the system solved as it solves a new task, so it holds more than the
queries a training run answers greedily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from ..data.dataset import Query, make_queries
from ..data.packing import make_batch
from ..data.scoring import score_submission
from ..data.sequences import Example, forward_example
from ..data.sources import evaluation_ids, load_tasks
from ..data.synthetic import is_synthetic
from ..data.tasks import Task
from ..data.tokens import SequenceTooLong
from ..data.views import View
from ..errors import ArcEfeError
from ..model.device import autocast
from .memory import MemoryBank
from .retrieval import solution_embeddings, task_keys

KEY_BATCH = 8  # tasks keyed per forward pass


@dataclass
class Recall:
    queries: list[Query]  # one verified query per stored task (its lowest-risk entry)
    keys: torch.Tensor  # (tasks, hidden), L2-normalised, from the answering model
    left_out: dict[str, int] = field(default_factory=dict)  # entries not used, by reason

    @classmethod
    def from_bank(cls, policy, bank: MemoryBank, answering: Iterable[str], max_len: int,
                  where: str | Path, data: str | None = None) -> "Recall":
        """The solved tasks of `bank` that may be recalled while answering the tasks `answering`.
        `data`: the source of entries saved without one (a run's --data)."""
        forbidden = set(answering) | evaluation_ids()
        best: dict[str, dict] = {}
        left_out: dict[str, int] = {}
        for m in bank.meta:
            source = m.get("data") or data
            reason = ("an evaluation task or one being answered" if m["task_id"] in forbidden else
                      "no data source named" if source is None else
                      "a generated task" if is_synthetic(source) else None)
            if reason is not None:
                left_out[reason] = left_out.get(reason, 0) + 1
            elif m["task_id"] not in best or m["risk"] < best[m["task_id"]]["risk"]:
                best[m["task_id"]] = {**m, "data": source}
        sources: dict[str, dict[str, Task]] = {}
        queries = []
        for task_id, m in sorted(best.items()):
            if m["data"] not in sources:
                sources[m["data"]] = load_tasks(m["data"]).by_id()
            task = sources[m["data"]].get(task_id)
            split, index = m.get("split", "train"), m.get("index", 0)
            pairs = () if task is None else task.train if split == "train" else task.test
            if task is None or not isinstance(index, int) or not 0 <= index < len(pairs) or pairs[index].output is None:
                raise ArcEfeError(f"{where}: entry of task {task_id} ({split} {index}) is not a solved query "
                                  f"of {m['data']}")
            queries.append(Query(task, index, split))
        return cls.of_queries(policy, queries, max_len, left_out)

    @classmethod
    def of_queries(cls, policy, queries: Iterable[Query], max_len: int,
                   left_out: dict[str, int] | None = None) -> "Recall":
        """Solved queries (one per task), keyed by `policy`; those longer than `max_len` are left out."""
        left_out = dict(left_out or {})
        examples, kept = [], []
        for q in queries:
            try:
                examples.append(forward_example(q, View(), max_len))
                kept.append(q)
            except SequenceTooLong:
                left_out["longer than the context"] = left_out.get("longer than the context", 0) + 1
        device = next(policy.backbone.parameters()).device
        hidden = policy.backbone.get_input_embeddings().embedding_dim
        keys = [task_keys(policy.backbone, examples[i:i + KEY_BATCH], device).cpu()
                for i in range(0, len(examples), KEY_BATCH)]
        return cls(kept, torch.cat(keys) if keys else torch.zeros(0, hidden), left_out)

    def __len__(self) -> int:
        return len(self.queries)

    def nearest(self, policy, task: Task, k: int, max_len: int) -> list[Query]:
        """The verified queries of the `k` stored tasks nearest to `task` (never `task` itself),
        from the key of its demonstrations (a leave-one-out query: no test pair is read)."""
        own = [q for q in make_queries([task], "train") if q.context]
        if not own or not len(self) or k < 1:
            return []
        try:
            example = forward_example(own[0], View(), max_len)
        except SequenceTooLong:
            return []
        device = next(policy.backbone.parameters()).device
        key = task_keys(policy.backbone, [example], device).cpu()[0]
        order = torch.argsort(self.keys @ key, descending=True).tolist()
        return [self.queries[i] for i in order if self.queries[i].task.id != task.id][:k]

    @torch.no_grad()
    def helpful(self, policy, task: Task, candidates: list[Query], max_len: int,
                min_gain: float) -> list[Query]:
        """The `candidates` whose pairs (demonstrations and solved query) help the model read
        `task`: put before `task`'s demonstrations, they lower the loss of every leave-one-out
        query of `task`, and on average by at least `min_gain` (the loss per answer token over
        log(vocabulary), as test-time training's). A query that loses a demonstration to
        `max_len` counts as not helped, and a task whose own queries do not fit whole keeps
        none. Only `task.train` is read: never a test pair."""
        base = loo_losses(policy, task, max_len)
        if not base:
            return []
        kept = []
        for cand in candidates:
            losses = loo_losses(policy, task, max_len, cand)
            if losses is None:
                continue
            gains = [b - x for b, x in zip(base, losses)]
            if min(gains) > 0 and sum(gains) / len(gains) >= min_gain:
                kept.append(cand)
        return kept

    def summary(self) -> str:
        out = f"{len(self)} solved training tasks"
        if self.left_out:
            out += " (left out: " + ", ".join(f"{n} entries: {why}" for why, n in sorted(self.left_out.items())) + ")"
        return out


def solved_pairs(query: Query) -> tuple:
    """A stored task's pairs: its demonstrations, and its solved query when that is a test pair."""
    return (*query.task.train, query.target) if query.split == "test" else tuple(query.task.train)


@torch.no_grad()
def loo_losses(policy, task: Task, max_len: int, stored: Query | None = None) -> list[float] | None:
    """The model's loss (per answer token, over log(vocabulary)) on each leave-one-out query of
    `task`'s demonstrations; with a `stored` solved query, its task's pairs (demonstrations,
    and the solved query when it is a test pair) put first in every context. None when a query
    does not fit `max_len` whole, [] when `task` has fewer than two demonstrations. Of `task`,
    only its demonstrations are read."""
    own = [q for q in make_queries([task], "train") if q.context]
    before = solved_pairs(stored) if stored is not None else ()
    mixed = Task(f"{task.id}+{stored.task.id}", (*before, *task.train), ()) if stored is not None else task
    losses = [_answer_loss(policy, _example(Query(mixed, len(before) + q.index, "train"), max_len)) for q in own]
    return None if any(x is None for x in losses) else losses


def _example(query: Query, max_len: int) -> Example | None:
    """The query's sequence as it is (no view), or None when it does not fit whole."""
    try:
        example = forward_example(query, View(), max_len)
    except SequenceTooLong:
        return None
    return None if example.dropped else example


def _answer_loss(policy, example: Example | None) -> float | None:
    """The model's mean loss on the answer tokens of `example`, over log(vocabulary)."""
    if example is None:
        return None
    parameter = next(policy.backbone.parameters())
    batch = make_batch([example], None).to(parameter.device)
    with autocast(parameter.device, parameter.dtype):
        logits = policy(batch.input_ids, **batch.model_inputs())
    return F.cross_entropy(logits[batch.rows, batch.cols].float(), batch.targets).item() / math.log(logits.shape[-1])


def bank_from_evaluations(policy, records: Iterable[dict[str, Any]], max_len: int,
                          where: str) -> tuple[MemoryBank, dict[str, int]]:
    """(Solver2's memory bank of the test outputs that `records`, the task lines of `arc-efe
    evaluate`, got right, keyed by `policy`; the outputs left out, by reason). A task of an ARC
    evaluation set is never stored, nor a generated one (it cannot be loaded again by id), nor
    one whose answers came from a separate solutions file."""
    forbidden = evaluation_ids()
    sources: dict[str, dict[str, Task]] = {}
    left_out: dict[str, int] = {}
    solved: list[tuple[Query, float, str]] = []
    for r in records:
        task_id, source = r["task_id"], r["source"]
        reason = ("an evaluation task" if task_id in forbidden else
                  "a generated task" if is_synthetic(source) else
                  "answers from a separate solutions file" if r.get("solutions") else None)
        if reason is not None:
            left_out[reason] = left_out.get(reason, 0) + sum(bool(c) for c in r.get("correct") or [])
            continue
        if source not in sources:
            sources[source] = load_tasks(source).by_id()
        task = sources[source].get(task_id)
        if task is None:
            raise ArcEfeError(f"{where}: {source} has no task {task_id}")
        right = score_submission({task_id: r["attempts"]}, [task]).tasks[0].right  # the official check
        risks = r.get("risk") or []
        for i, ok in enumerate(right):
            if ok:
                risk = risks[i] if i < len(risks) and isinstance(risks[i], (int, float)) else 0.0
                solved.append((Query(task, i, "test"), float(risk), source))
    hidden = policy.backbone.get_input_embeddings().embedding_dim
    device = next(policy.backbone.parameters()).device
    bank = MemoryBank(hidden)
    kept = []
    for q, risk, source in solved:
        try:
            kept.append((q, forward_example(q, View(), max_len), risk, source))
        except SequenceTooLong:
            left_out["longer than the context"] = left_out.get("longer than the context", 0) + 1
    for i in range(0, len(kept), KEY_BATCH):
        chunk = kept[i:i + KEY_BATCH]
        examples = [e for _, e, _, _ in chunk]
        keys = task_keys(policy.backbone, examples, device).cpu()
        values = solution_embeddings(policy, examples, None, device)
        for (q, _, risk, source), key, value in zip(chunk, keys, values):
            bank.add(key, value, {"task_id": q.task.id, "split": q.split, "index": q.index, "risk": risk,
                                  "source": "evaluate", "data": source})
    return bank, left_out
