"""Choosing the two attempts among the candidates of one test output.

Every distinct candidate (a grid in the task's own frame) carries:
- `votes`: how many views' decodings produced it;
- `logliks`: its total log-likelihood under each scoring view (the answer tokens, END
  included, given that view's prompt), so every candidate is judged by the same experts.

The product of experts is the mean of those log-likelihoods (the log of the geometric mean
of the views' probabilities). The selection score is

    score = mean_v loglik_v + vote_weight * ln(votes)

so a candidate that several views found independently gains ln 2, ln 3, ... nats per unit of
`vote_weight`; `vote_weight = 0` is a pure product of experts. Ties are broken by more
votes, then by the higher product of experts, then by grid shape and cells (smaller first),
so the choice never depends on the order the candidates were found in.

Beside the choice each candidate reports its EFE in the training loss's units: risk = the
mean negative log-likelihood per answer token, / ln V, averaged over views, and ambiguity =
the mean entropy of the predictions at its tokens, / ln V, averaged over views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..data.tasks import Grid
from ..data.tokens import VOCAB_SIZE


def grid_key(grid: Grid) -> tuple[int, int, bytes]:
    return (int(grid.shape[0]), int(grid.shape[1]), np.ascontiguousarray(grid, dtype=np.uint8).tobytes())


@dataclass
class Candidate:
    grid: Grid
    votes: int = 0
    logliks: list[float] = field(default_factory=list)  # total log-likelihood under each view
    entropies: list[float] = field(default_factory=list)  # mean token entropy under each view
    tokens: int = 0  # answer tokens (cells, row ends, END)
    from_memory: bool = False  # decoded with Solver2's retrieval in the prompt

    @property
    def poe(self) -> float:
        """Product of experts: mean log-likelihood over the scoring views."""
        return float(np.mean(self.logliks)) if self.logliks else -math.inf

    def score(self, vote_weight: float) -> float:
        return self.poe + vote_weight * math.log(max(self.votes, 1))

    @property
    def risk(self) -> float:
        return -self.poe / max(self.tokens, 1) / math.log(VOCAB_SIZE)

    @property
    def ambiguity(self) -> float:
        return float(np.mean(self.entropies)) / math.log(VOCAB_SIZE) if self.entropies else math.nan

    @property
    def efe(self) -> float:
        return self.risk + self.ambiguity


def rank(candidates: Sequence[Candidate], vote_weight: float = 1.0) -> list[Candidate]:
    """Candidates best first, by the rule in the module docstring."""
    return sorted(candidates, key=lambda c: (-c.score(vote_weight), -c.votes, -c.poe, grid_key(c.grid)))


def choose_two(candidates: Sequence[Candidate], vote_weight: float = 1.0) -> list[Candidate]:
    """The best two (fewer when there are fewer candidates)."""
    return rank(candidates, vote_weight)[:2]
