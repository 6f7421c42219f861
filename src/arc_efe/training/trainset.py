"""What training draws its queries from: task sources, mixed.

`--data arc-agi-1/training+synthetic --mix 0.3,0.7` mixes sources: each query slot of a batch
picks a source with those probabilities. File and embedded sources form one finite pool of
queries (leave-one-out over demonstrations, plus test pairs with known answers), walked in
reshuffled passes; generated sources (`synthetic`, `synthetic/<family>`) give a fresh task for
every slot. Everything is a function of (seed, epoch, batch, slot), so a resumed run draws the
same queries.

Validation uses the finite sources' held-out tasks (`--val-fraction`, by task); with only
generated sources it uses fresh generated tasks from a seed no training slot uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..data.dataset import Query, make_queries, split_tasks
from ..data.sources import load_tasks
from ..data.synthetic import SyntheticSource, is_synthetic
from ..data.tokens import SequenceTooLong, encode_task
from ..errors import ConfigError
from ..saved.config import TrainConfig, default_data

VAL_SEED_OFFSET = 1_000_003  # generated validation tasks come from a seed training never uses


def fits(q: Query, max_len: int) -> bool:
    """The query fits max_len with at least one demonstration (when it has any)."""
    try:
        enc = encode_task(q.context, q.target.input, q.target.output, max_len)
    except SequenceTooLong:
        return False
    return enc.dropped < len(q.context) or not q.context


def training_queries(tasks, max_len: int) -> list[Query]:
    """Leave-one-out queries from the demonstrations, plus test pairs whose answers are known."""
    queries = make_queries(tasks, "train")
    queries += make_queries([t for t in tasks if t.has_answers], "test")
    return [q for q in queries if fits(q, max_len)]


@lru_cache(maxsize=64)
def _pass_order(n: int, seed: int, epoch: int, p: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, p]).permutation(n)


CURRICULUM_START = 3  # largest grid side of generated tasks at the start of a --curriculum run


@dataclass
class TrainingData:
    name: str
    queries: list[Query]  # the finite pool (may be empty)
    synthetic: list[SyntheticSource]
    probs: list[float]  # [finite pool (when there is one)] + one per generated source
    val_queries: list[Query]
    eval_queries: list[Query]  # fixed training queries decoded for training accuracy
    n_fit_tasks: int = 0
    n_val_tasks: int = 0
    skipped: list[str] = field(default_factory=list)

    def batches_per_epoch(self, cfg: TrainConfig) -> int:
        if cfg.max_batches:
            return cfg.max_batches
        if not self.queries:
            raise ConfigError("generated tasks never run out: pass --max-batches to set the epoch length")
        return math.ceil(len(self.queries) / cfg.batch_size)

    def query(self, cfg: TrainConfig, epoch: int, b: int, slot: int, rng: np.random.Generator) -> Query:
        """The query of one slot of micro-batch b."""
        g = b * cfg.batch_size + slot  # the slot's place in this epoch's stream
        k = int(rng.choice(len(self.probs), p=self.probs)) if len(self.probs) > 1 else 0
        if self.queries and k == 0:
            p, j = divmod(g, len(self.queries))
            return self.queries[_pass_order(len(self.queries), cfg.seed, epoch, p)[j]]
        source = self.synthetic[k - 1 if self.queries else k]
        side = curriculum_side(cfg, source.max_side, epoch, b, self.batches_per_epoch(cfg))
        for attempt in range(20):  # a generated task too long for max_len is passed over
            task = source.task((epoch * 1_000_000 + g) * 20 + attempt, side)
            candidates = [q for q in make_queries([task], "train") + make_queries([task], "test")
                          if fits(q, cfg.max_len)]
            if candidates:
                return candidates[int(rng.integers(len(candidates)))]
        raise ConfigError(f"{source.name}: no generated task fits --max-len {cfg.max_len}")


def curriculum_side(cfg: TrainConfig, cap: int, epoch: int, b: int, per_epoch: int) -> int | None:
    """With --curriculum, the largest side of generated grids at micro-batch b of `epoch`: from
    CURRICULUM_START at the start up to the source's own limit `cap` halfway through training,
    then `cap`. None (the source's limit) without --curriculum."""
    if not cfg.curriculum:
        return None
    progress = (epoch * per_epoch + b) / max(1, cfg.epochs * per_epoch)
    start = min(CURRICULUM_START, cap)
    return min(cap, start + int((cap - start) * min(1.0, 2 * progress)))


def load_training_data(cfg: TrainConfig) -> TrainingData:
    name = cfg.data or default_data()
    parts = name.split("+")
    if cfg.mix is None:
        weights = [1.0] * len(parts)
    else:
        try:
            weights = [float(w) for w in cfg.mix.split(",")]
        except ValueError:
            raise ConfigError(f"--mix must be numbers like 0.3,0.7, got {cfg.mix!r}") from None
        if len(weights) != len(parts) or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"--mix needs one weight >= 0 per source of --data ({len(parts)}), "
                              f"got {cfg.mix!r}")
    tasks, skipped, synthetic, finite_w, syn_w = [], [], [], 0.0, []
    for part, w in zip(parts, weights):
        if is_synthetic(part):
            synthetic.append(SyntheticSource(part, cfg.seed))
            syn_w.append(w)
        else:
            loaded = load_tasks(part, cfg.solutions, cfg.skip_invalid)
            tasks += loaded.tasks
            skipped += [s.reason for s in loaded.skipped]
            finite_w += w
    fit_tasks, val_tasks = split_tasks(tasks, cfg.val_fraction, cfg.seed)
    queries = training_queries(fit_tasks, cfg.max_len)
    if tasks and not queries:
        raise ConfigError(f"{name}: no training query fits --max-len {cfg.max_len}")
    weights = ([finite_w] if queries else []) + syn_w
    probs = [w / sum(weights) for w in weights]
    rng = np.random.default_rng(cfg.seed)
    if queries:
        eval_queries = [queries[i] for i in sorted(rng.permutation(len(queries))[: cfg.train_eval_queries])]
    else:
        eval_queries = [q for s in synthetic for t in s.tasks(cfg.train_eval_queries // len(synthetic) or 1)
                        for q in make_queries([t], "test")[:1]]
    if val_tasks:
        val_from = val_tasks[: cfg.max_val_tasks]
    else:
        val_from = [t for s in synthetic for t in
                    SyntheticSource(s.name, cfg.seed + VAL_SEED_OFFSET).tasks(cfg.max_val_tasks // max(len(synthetic), 1))]
    val_queries = [q for q in make_queries(val_from, "test") if q.target.output is not None]
    return TrainingData(name, queries, synthetic, probs, val_queries, eval_queries,
                        len(fit_tasks), len(val_from), skipped)
