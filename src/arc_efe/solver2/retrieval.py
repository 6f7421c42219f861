"""Solver2: the memory-augmented solver around the Policy, and the success rule that fills its memory.

- Task encoder: the backbone's last hidden states, mean-pooled over a query's
  demonstrations, give the task key (L2-normalised); pooled over a solved answer they give
  the solution embedding. The same function serves training and inference.
- Retrieval: the top-k memory entries (cosine similarity; the query's own task left out
  during training) are mixed by a softmax over their similarities, projected to the
  backbone's width and added to every input embedding of the query's sequence through a
  tanh gate that starts at zero (as in Flamingo's gated cross-attention). At zero the model
  is exactly the model without memory, so an empty or useless memory cannot hurt; the gate's
  gradient is not zero, so it opens once the memory helps.
- `MemoryWriter`: the success rule, called after every optimizer step with the step's
  `StepOutcome`, which stores the verified solutions in the bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Query
from ..data.sequences import Example, collate, forward_example, pad_rows
from ..data.tasks import grids_equal
from ..data.tokens import PAD
from ..data.views import View
from ..model.policy import decode_queries
from ..model.distributed import gather_lists
from ..model.positions import backbone_places, embed
from .memory import MemoryBank


@dataclass
class StepOutcome:
    """One optimizer step of training, as its step callbacks read it (the memory writer first).

    Built by `Trainer.step` (training/trainer.py). The per-query lists hold this rank's queries
    of the step's micro-batches, each under its training view; the totals are every rank's."""
    step: int  # optimizer steps done before this one
    epoch: int  # 0-based
    queries: list[Query] = field(default_factory=list)
    views: list[View] = field(default_factory=list)
    risk: list[float] = field(default_factory=list)  # per-query risk of the forward view (normalised like the loss)
    cells_right: list[bool] = field(default_factory=list)  # every answer token argmax-right, teacher-forced
    loss: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    grad_norm: float = 0.0
    tokens: int = 0
    retrieved: int = 0  # queries that found at least one memory entry
    grids_right: int = 0  # queries with every answer token right (before the step)
    grids: int = 0  # queries counted
    skipped: bool = False  # the step was not taken (non-finite loss or gradient)


class Solver2(nn.Module):
    def __init__(self, hidden: int, top_k: int = 4, temperature: float = 0.1):
        super().__init__()
        self.top_k = top_k
        self.temperature = temperature
        self.proj = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.gate = nn.Parameter(torch.zeros(()))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # Checkpoints from before refinement was removed also hold its halting head (`halt.*`),
        # which nothing reads now.
        kept = {k: v for k, v in state_dict.items() if not k.startswith("halt.")}
        return super().load_state_dict(kept, strict, assign)

    def readout(self, bank: MemoryBank, keys: torch.Tensor,
                exclude_tasks: list[str | None] | None = None) -> tuple[torch.Tensor, int]:
        """(B, hidden) memory vectors to add to each query's embeddings; and how many queries
        found at least one neighbour."""
        device = self.gate.device
        out = torch.zeros(keys.shape[0], self.proj[-1].out_features, device=device)
        if len(bank) == 0:
            return out, 0
        nb = bank.search(keys, self.top_k, exclude_tasks)
        valid = nb.index >= 0
        found = valid.any(-1)
        if not bool(found.any()):
            return out, 0
        idx = nb.index.clamp_min(0)
        mem = torch.cat([bank.keys[idx], bank.values[idx]], -1).to(device)  # (B, k, 2h)
        weights = torch.softmax(nb.similarity.to(device) / self.temperature, -1)
        weights = torch.where(valid.to(device), weights, torch.zeros_like(weights)).nan_to_num(0.0)
        mixed = (weights.unsqueeze(-1) * self.proj(mem)).sum(1)
        return torch.tanh(self.gate) * mixed, int(found.sum())


@torch.no_grad()
def task_keys(backbone: nn.Module, examples: list[Example], device: torch.device) -> torch.Tensor:
    """Task keys of examples: last hidden states mean-pooled over their demonstrations."""
    ends = torch.tensor([max(e.context_end, 1) for e in examples])
    length = int(ends.max())
    full, _ = pad_rows([e.tokens for e in examples])
    mask = (torch.arange(length)[None] < ends[:, None]).long()
    full, mask = full.to(device), mask.to(device)
    # grid places from the whole sequence, so each demonstration keeps the role it has there
    ids = torch.where(mask.bool(), full[:, :length], torch.full_like(mask, PAD))
    places = backbone_places(backbone, full)
    places = None if places is None else places[:, :length]
    hidden = backbone(inputs_embeds=embed(backbone, ids, places=places), attention_mask=mask,
                      output_hidden_states=True, use_cache=False).hidden_states[-1].float()
    pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


@torch.no_grad()
def solution_embeddings(policy, examples: list[Example], memory: torch.Tensor | None,
                        device: torch.device) -> list[torch.Tensor]:
    """Each example's solution embedding: its last hidden states averaged over its answer tokens."""
    batch = collate(examples).to(device)
    _, hidden = policy(batch.input_ids, batch.attention_mask, memory, hidden=True)
    return [hidden[k, e.answer_start: e.answer_start + e.answer_len].float().mean(0).cpu()
            for k, e in enumerate(examples)]


REFRESH = 0.5


class MemoryWriter:
    """Solver2's success rule, called after every optimizer step with the step's queries.

    `threshold="exact"`: a query is solved when the Policy's greedy answer (under its training
    view, mapped back) equals the target exactly. Decoding every query every step would
    cost more than the step, so only queries whose teacher-forced answer had every token
    right are decoded: that is necessary for an exact greedy answer, and rare until the
    model is good. A number instead (e.g. 0.05): solved when the query's per-token risk is
    under it, with no decoding.
    Every query checked counts in `queries`; every stored solution in `adds`; a solved query
    left out because the bank already holds it about as well, in `known`.
    """

    def __init__(self, policy, solver2: Solver2, bank: MemoryBank, threshold: str, max_len: int,
                 device: torch.device):
        self.policy, self.solver2, self.bank = policy, solver2, bank
        self.exact = threshold == "exact"
        self.limit = None if self.exact else float(threshold)
        self.max_len, self.device = max_len, device
        self.reset_counts()

    def _kept_better(self, q, risk: float) -> bool:
        """A stored query is checked again only once its risk has fallen below REFRESH x the
        stored one: its entry would be replaced by a barely better copy of the same answer."""
        stored = self.bank.stored_risk({"task_id": q.task.id, "split": q.split, "index": q.index})
        return stored is not None and risk >= REFRESH * stored

    def reset_counts(self) -> None:
        self.adds = 0
        self.queries = 0
        self.known = 0

    @torch.no_grad()
    def __call__(self, result: StepOutcome) -> None:
        if result.skipped:  # a step that was not taken (NaN guard) verifies nothing
            return
        # Under torchrun each rank checks its own queries; the entries are gathered and added
        # in rank order everywhere, so every rank keeps the same bank (distributed.py).
        for n_queries, (known, entries) in gather_lists([(len(result.queries), self._solved(result))]):
            self.queries += n_queries
            self.known += known
            for key, value, meta in entries:
                if self.bank.add(key, value, meta):
                    self.adds += 1

    def _solved(self, result: StepOutcome) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor, dict]]]:
        """(queries left out as already stored, [(key, value, metadata) of each of the step's
        queries that counts as solved])."""
        if self.exact:
            cand = [i for i, ok in enumerate(result.cells_right) if ok]
        else:
            cand = [i for i, r in enumerate(result.risk) if r < self.limit]
        # A query whose stored solution is about as good would not be worth replacing: skip it.
        new = [i for i in cand if not self._kept_better(result.queries[i], result.risk[i])]
        known, cand = len(cand) - len(new), new
        if not cand:
            return known, []
        queries = [result.queries[i] for i in cand]
        views = [result.views[i] for i in cand]
        examples = [forward_example(q, v, self.max_len) for q, v in zip(queries, views)]
        keys = task_keys(self.policy.backbone, examples, self.device)
        memory, _ = self.solver2.readout(self.bank, keys, [q.task.id for q in queries])
        solved = [True] * len(cand)
        if self.exact:
            answers = decode_queries(self.policy, queries, views, self.max_len, memory)
            solved = [grids_equal(a, q.target.output) for a, q in zip(answers, queries)]
        values = solution_embeddings(self.policy, examples, memory, self.device)
        entries = []
        for k, i in enumerate(cand):
            if not solved[k]:
                continue
            q, v = queries[k], views[k]
            meta = {"task_id": q.task.id, "split": q.split, "index": q.index, "epoch": result.epoch + 1,
                    "step": result.step + 1, "risk": result.risk[i], "dihedral": v.dihedral,
                    "colours": list(v.colours), "source": "exact" if self.exact else "risk",
                    "data": q.task.source}  # where the task can be loaded again (recall.py)
            entries.append((keys[k].cpu(), values[k], meta))
        return known, entries
