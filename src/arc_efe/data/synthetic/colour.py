"""Colour families: fixed recolourings, recolouring by object size or position, counting colours.

Colour 0 is the background throughout.
"""

from __future__ import annotations

import numpy as np

from . import Rule, register
from ._grids import any_size, pick_colours, random_size, varied_grid
from ._objects import components, place_shapes, random_shape


def _lookup(mapping: dict[int, int]):
    """apply that recolours by a table (colours not in the table stay)."""
    table = np.arange(10, dtype=np.uint8)
    for a, b in mapping.items():
        table[a] = b
    return lambda g: table[g]


def _ensure_colours(rng: np.random.Generator, g: np.ndarray, colours: list[int]) -> np.ndarray:
    """Put each of `colours` on at least one random cell (so every demonstration shows them)."""
    cells = rng.choice(g.size, size=min(len(colours), g.size), replace=False)
    for cell, c in zip(cells, colours):
        g.flat[cell] = c
    return g


@register("colour_permutation", "colour", "permute a few colours, the others unchanged")
def colour_permutation(rng: np.random.Generator) -> Rule:
    """A fixed cycle of 3-4 colours (a -> b -> c -> a); every other colour stays."""
    cycle = pick_colours(rng, int(rng.integers(3, 5)))
    mapping = {a: cycle[(i + 1) % len(cycle)] for i, a in enumerate(cycle)}
    rest = [c for c in range(1, 10) if c not in cycle]

    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = any_size(rng, 3, 10)
        extra = [int(c) for c in rng.choice(rest, size=int(rng.integers(0, 3)), replace=False)]
        g = varied_grid(rng, h, w, cycle + extra)
        return _ensure_colours(rng, g, cycle)

    return Rule(apply=_lookup(mapping), sample_input=sample)


@register("swap_colours", "colour", "swap two colours")
def swap_colours(rng: np.random.Generator) -> Rule:
    """Colours a and b trade places; every other colour stays."""
    a, b = pick_colours(rng, 2)
    rest = [c for c in range(1, 10) if c not in (a, b)]

    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = any_size(rng, 3, 12)
        extra = [int(c) for c in rng.choice(rest, size=int(rng.integers(0, 3)), replace=False)]
        g = varied_grid(rng, h, w, [a, b] + extra)
        return _ensure_colours(rng, g, [a, b])

    return Rule(apply=_lookup({a: b, b: a}), sample_input=sample)


def _objects_sampler(colour: int, sizes_for_input):
    """sample_input: separate one-coloured 4-connected objects whose sizes come from
    `sizes_for_input(rng)`."""
    def sample(rng: np.random.Generator) -> np.ndarray:
        while True:
            sizes = sizes_for_input(rng)
            h, w = random_size(rng, 6, 14)
            shapes = [random_shape(rng, s, 4, 4, weighted=True) for s in sizes]
            g = place_shapes(rng, h, w, shapes, [colour] * len(shapes), tries=50, by_box=True)
            if g is not None:
                return g
    return sample


@register("recolour_by_size", "colour", "recolour each object by its size")
def recolour_by_size(rng: np.random.Generator) -> Rule:
    """Every object (4-connected, one colour) of size s in 1..m gets a fixed colour for s."""
    m = int(rng.integers(2, 5))
    source, *targets = pick_colours(rng, m + 1)
    by_size = {s + 1: c for s, c in enumerate(targets)}

    def apply(g: np.ndarray) -> np.ndarray:
        out = g.copy()
        for o in components(g):
            if o.colour == source and o.size in by_size:
                out[o.rows, o.cols] = by_size[o.size]
        return out

    def sizes(rng: np.random.Generator) -> list[int]:
        every = list(range(1, m + 1))  # each size at least once, then a few more
        return [int(s) for s in rng.permutation(every + list(rng.integers(1, m + 1, size=int(rng.integers(0, 4)))))]

    return Rule(apply=apply, sample_input=_objects_sampler(source, sizes))


@register("recolour_largest", "colour", "recolour the largest object")
def recolour_largest(rng: np.random.Generator) -> Rule:
    """Among one-coloured objects, the largest (it is unique) gets a fixed new colour."""
    source, target = pick_colours(rng, 2)

    def apply(g: np.ndarray) -> np.ndarray:
        out = g.copy()
        objects = [o for o in components(g) if o.colour == source]
        if objects:
            sizes = [o.size for o in objects]
            if sizes.count(max(sizes)) == 1:
                best = objects[sizes.index(max(sizes))]
                out[best.rows, best.cols] = target
        return out

    def sizes(rng: np.random.Generator) -> list[int]:
        n = int(rng.integers(2, 6))
        smaller = [int(s) for s in rng.integers(1, 8, size=n - 1)]
        return [int(s) for s in rng.permutation(smaller + [max(smaller) + int(rng.integers(1, 4))])]

    return Rule(apply=apply, sample_input=_objects_sampler(source, sizes))


@register("recolour_by_half", "colour", "recolour cells by which half of the grid they are in")
def recolour_by_half(rng: np.random.Generator) -> Rule:
    """Non-background cells in the left (or top) half become colour a, those in the other half
    colour b; the split direction is fixed."""
    vertical_split = bool(rng.integers(0, 2))  # True: left/right halves, False: top/bottom
    a, b = pick_colours(rng, 2)
    rest = [c for c in range(1, 10) if c not in (a, b)]

    def apply(g: np.ndarray) -> np.ndarray:
        out = g.copy()
        first = np.zeros(g.shape, dtype=bool)
        if vertical_split:
            first[:, : g.shape[1] // 2] = True
        else:
            first[: g.shape[0] // 2, :] = True
        out[(g != 0) & first] = a
        out[(g != 0) & ~first] = b
        return out

    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = random_size(rng, 2, 7)
        h, w = (h, 2 * w) if vertical_split else (2 * h, w)  # the split side is even
        return varied_grid(rng, h, w, [int(rng.choice(rest))])

    return Rule(apply=apply, sample_input=sample)


def _counts_sampler(pick_unique_counts):
    """sample_input: 2-4 colours scattered on background with distinct counts."""
    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = random_size(rng, 3, 10)
        k = int(rng.integers(2, 5))
        while k * (k + 1) // 2 > h * w:
            k -= 1
        counts = pick_unique_counts(rng, k, h * w)
        colours = pick_colours(rng, k)
        g = np.zeros(h * w, dtype=np.uint8)
        cells = rng.permutation(h * w)
        start = 0
        for c, n in zip(colours, counts):
            g[cells[start:start + n]] = c
            start += n
        return g.reshape(h, w)
    return sample


def _distinct_counts(rng: np.random.Generator, k: int, area: int) -> list[int]:
    """k different positive counts that fit in `area` cells (needs k(k+1)/2 <= area)."""
    cap = max(k, int(area * rng.uniform(0.3, 0.9)))
    for _ in range(50):
        counts = [int(c) for c in rng.choice(np.arange(1, cap + 1), size=k, replace=False)]
        if sum(counts) <= area:
            return counts
    return [int(c) for c in rng.permutation(np.arange(1, k + 1))]


def _colour_counts(g: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(g[g != 0], return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts)}


@register("majority_colour", "colour", "output the most frequent non-background colour as 1x1")
def majority_colour(rng: np.random.Generator) -> Rule:
    """The output is a 1x1 grid of the most common non-background colour."""
    def apply(g: np.ndarray) -> np.ndarray:
        counts = _colour_counts(g)
        best = max(counts, key=lambda c: (counts[c], -c)) if counts else 0
        return np.array([[best]], dtype=np.uint8)

    return Rule(apply=apply, sample_input=_counts_sampler(_distinct_counts))


@register("minority_colour", "colour", "output the least frequent non-background colour as 1x1")
def minority_colour(rng: np.random.Generator) -> Rule:
    """The output is a 1x1 grid of the rarest non-background colour."""
    def apply(g: np.ndarray) -> np.ndarray:
        counts = _colour_counts(g)
        best = min(counts, key=lambda c: (counts[c], c)) if counts else 0
        return np.array([[best]], dtype=np.uint8)

    return Rule(apply=apply, sample_input=_counts_sampler(_distinct_counts))


@register("fill_background", "colour", "paint the background a fixed colour")
def fill_background(rng: np.random.Generator) -> Rule:
    """Every background (0) cell becomes a fixed colour c; other cells stay."""
    fill = pick_colours(rng, 1)[0]
    rest = [c for c in range(1, 10) if c != fill]

    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = random_size(rng, 3, 12)
        colours = [int(c) for c in rng.choice(rest, size=int(rng.integers(1, 4)), replace=False)]
        return varied_grid(rng, h, w, colours)

    return Rule(apply=_lookup({0: fill}), sample_input=sample)
