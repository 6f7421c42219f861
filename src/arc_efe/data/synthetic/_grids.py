"""Grid-level helpers for writing families: sizes, offsets, colours and random grid content.
Object-level helpers (components, shapes, placing them) live in `_objects`."""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np

from ..tasks import MAX_SIDE, Grid
from ._objects import place_rects

# The largest side `any_size` draws, lowered while a size-limited source generates. Other
# families keep their sizes; a draw too large for the limit is redrawn by the generator.
SIZE_CAP: ContextVar[int] = ContextVar("SIZE_CAP", default=MAX_SIDE)


def random_size(rng: np.random.Generator, lo: int = 3, hi: int = 12) -> tuple[int, int]:
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def any_size(rng: np.random.Generator, lo: int = 3, hi: int = 12) -> tuple[int, int]:
    """`random_size` for rules that work on a grid of any size: within a source's size limit."""
    hi = min(hi, SIZE_CAP.get())
    return random_size(rng, min(lo, hi), hi)


def random_offset(rng: np.random.Generator, reach: int = 3) -> tuple[int, int]:
    """A non-zero (rows, cols) offset with both parts in -reach..reach."""
    while True:
        dr, dc = int(rng.integers(-reach, reach + 1)), int(rng.integers(-reach, reach + 1))
        if (dr, dc) != (0, 0):
            return dr, dc


def pick_colours(rng: np.random.Generator, n: int, exclude: tuple[int, ...] = (0,)) -> list[int]:
    """n different colours, none of them in `exclude` (by default the background 0)."""
    pool = [c for c in range(10) if c not in exclude]
    return [int(c) for c in rng.choice(pool, size=n, replace=False)]


def noise_grid(rng: np.random.Generator, h: int, w: int, colours: list[int], density: float = 0.5,
               background: int = 0) -> Grid:
    """Background with cells of `colours` scattered at `density`."""
    g = np.full((h, w), background, dtype=np.uint8)
    mask = rng.random((h, w)) < density
    g[mask] = rng.choice(colours, size=int(mask.sum()))
    return g


def varied_grid(rng: np.random.Generator, h: int, w: int, colours: list[int],
                background: int = 0) -> Grid:
    """A grid with some non-background content: scattered cells, solid rectangles, or both."""
    style = int(rng.integers(0, 3))
    g = np.full((h, w), background, dtype=np.uint8)
    if style in (0, 2):
        g = noise_grid(rng, h, w, colours, density=float(rng.uniform(0.2, 0.7)), background=background)
    if style in (1, 2):
        n = int(rng.integers(1, 5))
        rects = place_rects(rng, h, w, n, list(rng.permutation(colours)), max_side=max(1, min(h, w) // 2),
                            background=background, gap=0)
        if rects is not None:
            g = np.where(rects != background, rects, g).astype(np.uint8)
    if (g == background).all():
        g[int(rng.integers(0, h)), int(rng.integers(0, w))] = colours[0]
    return g
