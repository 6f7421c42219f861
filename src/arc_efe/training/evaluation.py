"""Accuracy during training: exact greedy answers, and pass@2 on held-out tasks.

Training accuracy decodes a fixed subset of training queries as they are (identity view).
Validation accuracy is the official score on the validation tasks' test outputs, with two
attempts per output: the greedy answer on the task as it is, and the greedy answer on the
transposed task mapped back.

In-context accuracy (`icl_queries`) is the curve that shows rule learning appear: exact greedy
answers, with no test-time training, on a fixed set of fresh generated tasks of seven simple
families (colour permutation and swap, flips, rotations, transpose; grids up to 6x6) that no
run trains on (its own seed). A model that only memorises its training tasks stays at 0 here.
"""

from __future__ import annotations

import functools
from typing import Sequence

from ..data.dataset import Query
from ..data.scoring import ScoreReport, make_entry, score_submission
from ..data.tasks import MAX_SIDE, grids_equal
from ..data.views import View
from ..model.policy import Policy, decode_queries

ICL_FAMILIES = "calibration"  # data/synthetic GROUPS
ICL_SEED = 7_777_777  # training sources use the run's seed: these tasks are never trained on
ICL_SIDE = 6


@functools.lru_cache(maxsize=4)
def icl_queries(n: int, seed: int = ICL_SEED) -> tuple[Query, ...]:
    """The first test query of each of `n` fresh generated tasks (the same for every run)."""
    from ..data.dataset import make_queries
    from ..data.synthetic import SyntheticSource

    tasks = SyntheticSource(f"synthetic/{ICL_FAMILIES}:{ICL_SIDE}", seed).tasks(n)
    return tuple(make_queries([t], "test")[0] for t in tasks)


def exact_accuracy(policy: Policy, queries: Sequence[Query], max_len: int,
                   max_side: int = MAX_SIDE, shape_rule: bool = True) -> tuple[int, int]:
    """(right, total): greedy answers (at most max_side a side, of the demonstrations' size
    when they agree on one) that equal the target exactly."""
    answers = decode_queries(policy, queries, View(), max_len, max_side=max_side, shape_rule=shape_rule)
    return sum(grids_equal(a, q.target.output) for a, q in zip(answers, queries)), len(queries)


def pass_at_2(policy: Policy, queries: Sequence[Query], max_len: int) -> ScoreReport:
    """Official pass@2 over the tasks of `queries` (test-split queries with known answers)."""
    attempts = [decode_queries(policy, queries, v, max_len) for v in (View(), View(4))]
    submission: dict[str, list] = {}
    for k, q in enumerate(queries):
        entries = submission.setdefault(q.task.id, [None] * len(q.task.test))
        entries[q.index] = make_entry([a[k] for a in attempts if a[k] is not None])
    tasks = {q.task.id: q.task for q in queries}
    return score_submission(submission, list(tasks.values()))
