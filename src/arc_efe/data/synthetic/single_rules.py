"""A fixed check set of single-rule tasks: the simplest things a solver must get right.

Nine kinds (flip left-right and up-down, transpose, rotate 90 / 180 / 270, recolour one
colour, swap two colours, colour every non-zero cell), grids 3x3 to 5x5, four
demonstrations and one test input, drawn from a seed. `benchmarks/single_rules.py` runs
`arc-efe evaluate` on them; the tests use a few as the smallest proof that test-time training
learns a rule.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..tasks import Grid, Pair, Task

KINDS = ("flip_lr", "flip_ud", "transpose", "rotate_90", "rotate_180", "rotate_270",
         "recolour_one", "swap_two", "colour_nonzero")


def _rule(kind: str, rng: np.random.Generator) -> tuple[Callable[[Grid], Grid], tuple[int, ...]]:
    """The rule of `kind` and the colours every input must contain for it to show."""
    a, b = (int(c) for c in rng.choice(np.arange(1, 10), size=2, replace=False))
    geometric = {"flip_lr": np.fliplr, "flip_ud": np.flipud, "transpose": np.transpose,
                 "rotate_90": lambda g: np.rot90(g, -1), "rotate_180": lambda g: np.rot90(g, 2),
                 "rotate_270": lambda g: np.rot90(g, 1)}
    if kind in geometric:
        return geometric[kind], ()
    if kind == "recolour_one":
        return (lambda g: np.where(g == a, b, g)), (a,)
    if kind == "swap_two":
        return (lambda g: np.where(g == a, b, np.where(g == b, a, g))), (a, b)
    if kind == "colour_nonzero":
        return (lambda g: np.where(g != 0, a, 0)), ()
    raise ValueError(f"unknown single-rule kind {kind!r}; kinds: {', '.join(KINDS)}")


def _input(rng: np.random.Generator, sides: tuple[int, int], needs: tuple[int, ...]) -> Grid:
    h, w = (int(x) for x in rng.integers(sides[0], sides[1] + 1, size=2))
    palette = np.concatenate([[0], rng.choice(np.arange(1, 10), size=3, replace=False), needs])
    g = rng.choice(palette, size=(h, w))
    for c in needs:  # every colour the rule acts on shows up
        g[int(rng.integers(h)), int(rng.integers(w))] = c
    return g.astype(np.uint8)


def single_rule_task(kind: str, seed: int = 0, n_demos: int = 4, sides: tuple[int, int] = (3, 5)) -> Task:
    """One task of `kind`: `n_demos` demonstrations and one test, every output differing from
    its input; the same (kind, seed) always gives the same task."""
    rng = np.random.default_rng([seed, KINDS.index(kind) if kind in KINDS else -1, 0x51])
    rule, needs = _rule(kind, rng)
    pairs: list[Pair] = []
    while len(pairs) < n_demos + 1:
        x = _input(rng, sides, needs)
        y = np.ascontiguousarray(rule(x)).astype(np.uint8)
        if not np.array_equal(x, y) and all(not np.array_equal(x, p.input) for p in pairs):
            pairs.append(Pair(x, y))
    return Task(f"{kind}-s{seed}", tuple(pairs[:n_demos]), tuple(pairs[n_demos:]), source="single-rules")


def single_rule_tasks(seed: int = 0, kinds=KINDS, **kwargs) -> list[Task]:
    return [single_rule_task(k, seed, **kwargs) for k in kinds]
