"""Views of a task: dihedral transform x colour permutation x demonstration order.

A `View` applies to a whole task consistently (every grid gets the same transform and the
same colours) and has an exact inverse, so a prediction made under a view is mapped back
with `view.invert_grid` before it is compared with the real answer.

Dihedral index k in 0..7: rotate by k % 4 quarter turns (numpy's `rot90`, anticlockwise),
then transpose when k >= 4. Index 0 is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tasks import NUM_COLOURS, Grid, Pair, Task

IDENTITY_COLOURS = tuple(range(NUM_COLOURS))


@dataclass(frozen=True)
class View:
    dihedral: int = 0
    colours: tuple[int, ...] = IDENTITY_COLOURS  # colour c becomes colours[c]
    demo_order: tuple[int, ...] | None = None  # new train[i] = old train[demo_order[i]]

    def __post_init__(self) -> None:
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral index must be in 0..7, got {self.dihedral}")
        if sorted(self.colours) != list(range(NUM_COLOURS)):
            raise ValueError(f"colours must be a permutation of 0..9, got {self.colours}")
        if self.demo_order is not None and sorted(self.demo_order) != list(range(len(self.demo_order))):
            raise ValueError(f"demo_order must be a permutation, got {self.demo_order}")

    @property
    def is_identity(self) -> bool:
        order_id = self.demo_order is None or self.demo_order == tuple(range(len(self.demo_order)))
        return self.dihedral == 0 and self.colours == IDENTITY_COLOURS and order_id

    # --- grids -------------------------------------------------------------------------
    def apply_grid(self, grid: Grid) -> Grid:
        return dihedral(np.asarray(self.colours, dtype=grid.dtype)[grid], self.dihedral)

    def invert_grid(self, grid: Grid) -> Grid:
        inverse_colours = np.argsort(np.asarray(self.colours)).astype(grid.dtype)
        return inverse_dihedral(inverse_colours[grid], self.dihedral)

    # --- tasks -------------------------------------------------------------------------
    def apply_task(self, task: Task) -> Task:
        train = tuple(_map_pair(self.apply_grid, p) for p in task.train)
        if self.demo_order is not None:
            self._check_order(len(train))
            train = tuple(train[i] for i in self.demo_order)
        return task.replace(train=train, test=tuple(_map_pair(self.apply_grid, p) for p in task.test))

    def invert_task(self, task: Task) -> Task:
        train = task.train
        if self.demo_order is not None:
            self._check_order(len(train))
            restored: list[Pair | None] = [None] * len(train)
            for new_pos, old_pos in enumerate(self.demo_order):
                restored[old_pos] = train[new_pos]
            train = tuple(restored)  # type: ignore[arg-type]
        return task.replace(train=tuple(_map_pair(self.invert_grid, p) for p in train),
                            test=tuple(_map_pair(self.invert_grid, p) for p in task.test))

    def _check_order(self, n: int) -> None:
        if len(self.demo_order or ()) != n:
            raise ValueError(f"view orders {len(self.demo_order or ())} demonstrations, task has {n}")


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th dihedral transform of any 2-D array (cells keep their values)."""
    a = np.rot90(a, k % 4)
    return np.ascontiguousarray(a.T if k >= 4 else a)


def inverse_dihedral(a: np.ndarray, k: int) -> np.ndarray:
    if k >= 4:
        a = a.T
    return np.ascontiguousarray(np.rot90(a, -(k % 4)))


def _map_pair(fn, pair: Pair) -> Pair:
    return Pair(fn(pair.input), None if pair.output is None else fn(pair.output))


def random_view(rng: np.random.Generator, n_demos: int | None = None, *, dihedral: bool = True,
                colours: bool = True, keep_background: bool = True,
                shuffle_demos: bool = True) -> View:
    """Draw a view. `keep_background` keeps colour 0 fixed (ARC's usual background)."""
    k = int(rng.integers(8)) if dihedral else 0
    perm: tuple[int, ...] = IDENTITY_COLOURS
    if colours:
        if keep_background:
            perm = (0, *(int(c) + 1 for c in rng.permutation(NUM_COLOURS - 1)))
        else:
            perm = tuple(int(c) for c in rng.permutation(NUM_COLOURS))
    order = None
    if shuffle_demos and n_demos is not None:
        order = tuple(int(i) for i in rng.permutation(n_demos))
    return View(k, perm, order)


def all_dihedral_views() -> list[View]:
    return [View(k) for k in range(8)]


def rule_colours(pairs) -> set[int]:
    """Colours a task's rule seems to act on: those whose cell count differs between the
    input and the output of some demonstration (a recoloured, swapped or painted colour),
    plus the background 0. A rule that only moves cells (flip, rotate, shift) keeps every
    count, so no colour is named. Permuting the other colours keeps such a rule the same
    rule, which a model that has not learnt to read rules in context needs."""
    fixed = {0}
    for p in pairs:
        if p.output is None:
            continue
        a = np.bincount(p.input.reshape(-1), minlength=NUM_COLOURS)
        b = np.bincount(p.output.reshape(-1), minlength=NUM_COLOURS)
        if p.input.shape != p.output.shape:  # sizes differ: only colours that appear or vanish
            fixed |= {c for c in range(NUM_COLOURS) if (a[c] == 0) != (b[c] == 0)}
        else:
            fixed |= {c for c in range(NUM_COLOURS) if a[c] != b[c]}
    return fixed


def rule_keeping_view(rng: np.random.Generator, n_demos: int, fixed: set[int]) -> View:
    """Demonstration order shuffled and the colours outside `fixed` permuted among themselves;
    the grids keep their orientation."""
    free = [c for c in range(NUM_COLOURS) if c not in fixed]
    perm = list(range(NUM_COLOURS))
    for c, new in zip(free, rng.permutation(free) if free else []):
        perm[c] = int(new)
    return View(0, tuple(perm), tuple(int(i) for i in rng.permutation(n_demos)))
