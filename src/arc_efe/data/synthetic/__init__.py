"""Procedural ARC-style tasks: families of rules that make endless fresh tasks.

A family is a function `family(rng) -> Rule` registered with `@register(name, kind, summary)`.
It draws the rule's parameters (which colour, which direction, ...) and returns a `Rule`:
`sample_input(rng)` draws an input grid that the rule applies to, and `apply(grid)` computes
its output. `generate_task` turns a rule into a validated `Task` of 3-5 demonstrations and
1-2 tests, and draws again when a candidate breaks a check (outputs within 1..30 and colours
0..9, the rule consistent, demonstrations not all identical, not every output equal to its
input).

Families live in the modules of this package, grouped by the kind of knowledge they need
(geometry, colour, objects, patterns, logic); importing the package registers them all.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
from typing import Callable

import numpy as np

from ..tasks import MAX_SIDE, NUM_COLOURS, Grid, Pair, Task
from ._grids import SIZE_CAP


@dataclass
class Rule:
    apply: Callable[[Grid], Grid]
    sample_input: Callable[[np.random.Generator], Grid]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # geometry, colour, objects, patterns, logic, noise
    summary: str
    make: Callable[[np.random.Generator], Rule]


FAMILIES: dict[str, Family] = {}
# Named lists of families, usable in a source name (`synthetic/calibration:6`). `calibration`:
# the seven simple rules that the pretraining recipe weights up and on which in-context
# accuracy is measured (training/evaluation.py).
GROUPS: dict[str, tuple[str, ...]] = {
    "calibration": ("colour_permutation", "swap_colours", "flip_lr", "flip_ud", "rotate_90", "rotate_180",
                    "transpose"),
}


def register(name: str, kind: str, summary: str):
    def wrap(fn: Callable[[np.random.Generator], Rule]):
        if name in FAMILIES:
            raise ValueError(f"family {name!r} registered twice")
        FAMILIES[name] = Family(name, kind, summary, fn)
        return fn
    return wrap


class GenerationError(RuntimeError):
    """A family that keeps producing invalid tasks (a bug in the family)."""


def _valid_grid(g: Grid) -> bool:
    return (isinstance(g, np.ndarray) and g.ndim == 2 and 1 <= g.shape[0] <= MAX_SIDE
            and 1 <= g.shape[1] <= MAX_SIDE and g.dtype.kind in "iu"
            and int(g.min()) >= 0 and int(g.max()) < NUM_COLOURS)


def generate_task(family: Family, rng: np.random.Generator, task_id: str,
                  max_tries: int = 100, max_side: int = MAX_SIDE) -> Task:
    """One valid task of `family` whose grids are at most `max_side` on a side; raises
    GenerationError after `max_tries` failed draws."""
    def fits(g: Grid) -> bool:
        return _valid_grid(g) and max(g.shape) <= max_side

    token = SIZE_CAP.set(max_side)
    try:
        return _generate(family, rng, task_id, max_tries, fits)
    finally:
        SIZE_CAP.reset(token)


def _generate(family: Family, rng: np.random.Generator, task_id: str, max_tries: int,
              fits: Callable[[Grid], bool]) -> Task:
    for _ in range(max_tries):
        rule = family.make(rng)
        n_train = int(rng.integers(3, 6))
        n_test = int(rng.integers(1, 3))
        pairs: list[Pair] = []
        for _ in range(n_train + n_test):
            x = rule.sample_input(rng)
            if not fits(x):
                break
            y = rule.apply(x)
            if not fits(y) or not np.array_equal(rule.apply(x), y):
                break
            pairs.append(Pair(x.astype(np.uint8), y.astype(np.uint8)))
        else:
            demos = pairs[:n_train]
            distinct = len({(p.input.shape, p.input.tobytes()) for p in demos}) == len(demos)
            changes = any(p.input.shape != p.output.shape or not np.array_equal(p.input, p.output)
                          for p in pairs)
            if distinct and changes:
                return Task(task_id, tuple(demos), tuple(pairs[n_train:]), source=f"synthetic/{family.name}")
    raise GenerationError(f"family {family.name} gave no valid task in {max_tries} draws")




class SyntheticSource:
    """Endless generated tasks: `synthetic` (every family), `synthetic/<family>` or
    `synthetic/<family>,<family>,...`; a suffix `:N` keeps grids at most N x N (a curriculum
    from small grids: `synthetic:6`, `synthetic/flip_lr,rotate_90:5`).

    Task i is fully determined by (seed, i): its family is drawn from the family list and
    its content from an RNG seeded by both, so a run, a resumed run and an evaluation
    with the same seed see the same tasks, and different seeds see fresh ones.
    """

    def __init__(self, name: str = "synthetic", seed: int = 0):
        self.name = name
        self.seed = seed
        self.families, self.max_side = parse_name(name)

    def task(self, i: int, max_side: int | None = None) -> Task:
        """Task i; `max_side` tightens the source's size limit (a curriculum's early steps)."""
        side = self.max_side if max_side is None else min(max_side, self.max_side)
        rng = np.random.default_rng([self.seed, i, 0x5EED])
        families = self.families
        if side < MAX_SIDE and len(families) > 1:  # leave out families that cannot fit the limit
            families = [f for f in families if fits_side(f.name, side)] or families
        for attempt in range(len(families) + 1):
            family = families[int(rng.integers(len(families)))]
            try:
                return generate_task(family, rng, f"{family.name}-s{self.seed}-{i}", max_side=side)
            except GenerationError:
                # Under a size limit some families cannot fit; another family is drawn.
                if side == MAX_SIDE or len(families) == 1 or attempt == len(families):
                    raise
        raise AssertionError("unreachable")

    def tasks(self, n: int, start: int = 0) -> list[Task]:
        return [self.task(i) for i in range(start, start + n)]


@functools.lru_cache(maxsize=None)
def fits_side(family: str, side: int) -> bool:
    """Whether `family` made a task with grids at most `side` a side in a fixed probe (the same
    answer on every machine, so a source's tasks do not depend on what ran before). Families
    that cannot fit a small limit would otherwise cost 100 failed draws for every task."""
    try:
        generate_task(FAMILIES[family], np.random.default_rng([side, 0xF17]), "probe", max_side=side)
        return True
    except GenerationError:
        return False


def is_synthetic(name: str) -> bool:
    return name.split(":", 1)[0] == "synthetic" or name.startswith("synthetic/")


def parse_name(name: str) -> tuple[list[Family], int]:
    """The families a source name stands for (a group of `GROUPS` stands for its families) and
    its largest grid side; an unknown family lists the known ones."""
    from ...errors import SourceError

    base, _, cap = name.partition(":")
    max_side = MAX_SIDE
    if cap:
        if not cap.isdigit() or not 1 <= int(cap) <= MAX_SIDE:
            raise SourceError(f"{name}: the size limit after ':' must be a number from 1 to {MAX_SIDE}")
        max_side = int(cap)
    if base == "synthetic":
        return [FAMILIES[k] for k in sorted(FAMILIES)], max_side
    names = [f for n in base.split("/", 1)[1].split(",") for f in GROUPS.get(n, (n,))]
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise SourceError(f"{name}: no such family {', '.join(unknown)}; `arc-efe data list-families` lists the "
                          f"{len(FAMILIES)} families")
    return [FAMILIES[f] for f in names], max_side



def _load_families() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_load_families()
