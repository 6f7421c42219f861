"""Noise families: remove noise pixels of a fixed colour and restore what was under them."""

from __future__ import annotations

import numpy as np

from . import Rule, register
from ._grids import pick_colours, random_size
from ._objects import place_shapes

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _has_neighbour(occupied: np.ndarray) -> np.ndarray:
    """For each cell, whether any of its 8 neighbours is occupied."""
    h, w = occupied.shape
    padded = np.pad(occupied, 1)
    out = np.zeros((h, w), dtype=bool)
    for dr, dc in _NEIGHBOURS:
        out |= padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
    return out


@register("denoise_isolated", "noise", "remove isolated pixels of the noise colour")
def denoise_isolated(rng: np.random.Generator) -> Rule:
    """Single pixels of a fixed noise colour with only background around them are erased;
    the solid rectangles (which may share the noise colour) stay."""
    noise = pick_colours(rng, 1)[0]

    def apply(g: np.ndarray) -> np.ndarray:
        out = g.copy()
        out[(g == noise) & ~_has_neighbour(g != 0)] = 0
        return out

    def sample(rng: np.random.Generator) -> np.ndarray:
        while True:
            h, w = random_size(rng, 6, 16)
            n = int(rng.integers(1, 5))
            colours = pick_colours(rng, n)
            if rng.random() < 0.5:  # sometimes a rectangle in the noise colour, so colour alone is not enough
                colours[0] = noise
            rects = []
            for _ in range(n):
                rh, rw = 1, 1
                while (rh, rw) == (1, 1):  # a 1x1 rectangle would look like noise
                    rh, rw = (int(v) for v in rng.integers(1, 6, size=2))
                rects.append(np.ones((rh, rw), dtype=bool))
            g = place_shapes(rng, h, w, rects, colours, tries=50, by_box=True)
            if g is not None:
                break
        # noise: single pixels on background, not touching anything (diagonals included)
        for _ in range(int(rng.integers(2, max(3, h * w // 12)))):
            free = np.argwhere((g == 0) & ~_has_neighbour(g != 0))
            if len(free) == 0:
                break
            r, c = free[int(rng.integers(0, len(free)))]
            g[r, c] = noise
        return g

    return Rule(apply=apply, sample_input=sample)


_STRIPE_CLASSES = {
    "rows": lambda h, w, p: np.add.outer(np.arange(h), np.zeros(w, dtype=int)) % p,
    "cols": lambda h, w, p: np.add.outer(np.zeros(h, dtype=int), np.arange(w)) % p,
    "diagonal": lambda h, w, p: np.add.outer(np.arange(h), np.arange(w)) % p,
}


@register("denoise_stripes", "noise", "remove noise pixels from a periodic stripe pattern")
def denoise_stripes(rng: np.random.Generator) -> Rule:
    """The clean grid is stripes repeating with a fixed period (rows, columns or diagonals);
    pixels of a fixed noise colour are replaced by the stripe colour they cover."""
    period = int(rng.integers(2, 5))
    direction = str(rng.choice(list(_STRIPE_CLASSES)))
    noise = int(rng.integers(0, 10))
    palette = [c for c in range(10) if c != noise]

    def apply(g: np.ndarray) -> np.ndarray:
        out = g.copy()
        classes = _STRIPE_CLASSES[direction](*g.shape, period)
        for k in range(period):
            clean = g[(classes == k) & (g != noise)]
            if clean.size:  # the stripe's colour is its most common non-noise colour
                out[(classes == k) & (g == noise)] = np.bincount(clean, minlength=10).argmax()
        return out

    def sample(rng: np.random.Generator) -> np.ndarray:
        while True:
            h, w = random_size(rng, max(5, period + 2), 14)
            stripe = [int(c) for c in rng.choice(palette, size=period, replace=False)]
            classes = _STRIPE_CLASSES[direction](h, w, period)
            g = np.array(stripe, dtype=np.uint8)[classes]
            hit = rng.random((h, w)) < rng.uniform(0.05, 0.2)
            g[hit] = noise
            # each stripe keeps a clear majority of clean cells, and some noise is present
            if hit.any() and all(hit[classes == k].mean() < 0.4 for k in range(period)):
                return g

    return Rule(apply=apply, sample_input=sample)
