"""Logic families: the input is two equal halves separated by a one-cell divider line of a
divider colour (vertical or horizontal); the output, the size of one half, colours a cell c
when a boolean function of "the left (top) half's cell is non-background" and "the right
(bottom) half's cell is non-background" holds, background otherwise."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..tasks import Grid
from . import Rule, register
from ._grids import pick_colours

BG = 0


def split_halves(g: Grid, vertical: bool) -> tuple[Grid, Grid]:
    """The two halves either side of the middle divider (columns if `vertical`, else rows)."""
    if not vertical:
        a, b = split_halves(g.T, True)
        return a.T, b.T
    w = (g.shape[1] - 1) // 2
    if w < 1:
        return g, g
    return g[:, :w], g[:, w + 1:2 * w + 1]


def _halves_rule(rng: np.random.Generator, combine: Callable[[Grid, Grid], Grid]) -> Rule:
    """Shared sampler; `combine(A, B)` maps the two halves to the output grid."""
    vertical = bool(rng.random() < 0.5)
    divider, a_colour, b_colour = pick_colours(rng, 3)

    def apply(g: Grid) -> Grid:
        a, b = split_halves(g, vertical)
        return combine(a, b).astype(np.uint8)

    def sample(r: np.random.Generator) -> Grid:
        h, w = int(r.integers(3, 7)), int(r.integers(3, 7))
        a = np.where(r.random((h, w)) < r.uniform(0.3, 0.6), a_colour, BG)
        b = np.where(r.random((h, w)) < r.uniform(0.3, 0.6), b_colour, BG)
        g = np.hstack([a, np.full((h, 1), divider), b]).astype(np.uint8)
        return g if vertical else np.ascontiguousarray(g.T)

    return Rule(apply=apply, sample_input=sample)


def _boolean_family(rng: np.random.Generator, op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Rule:
    c = int(rng.integers(1, 10))
    return _halves_rule(rng, lambda a, b: np.where(op(a != BG, b != BG), c, BG))


@register("halves_and", "logic", "colour c where both halves have a coloured cell")
def halves_and(rng: np.random.Generator) -> Rule:
    """Output cell is c where the cell is coloured in both halves (A AND B)."""
    return _boolean_family(rng, lambda a, b: a & b)


@register("halves_or", "logic", "colour c where either half has a coloured cell")
def halves_or(rng: np.random.Generator) -> Rule:
    """Output cell is c where the cell is coloured in at least one half (A OR B)."""
    return _boolean_family(rng, lambda a, b: a | b)


@register("halves_xor", "logic", "colour c where exactly one half has a coloured cell")
def halves_xor(rng: np.random.Generator) -> Rule:
    """Output cell is c where the cell is coloured in exactly one half (A XOR B)."""
    return _boolean_family(rng, lambda a, b: a ^ b)


@register("halves_nor", "logic", "colour c where neither half has a coloured cell")
def halves_nor(rng: np.random.Generator) -> Rule:
    """Output cell is c where the cell is background in both halves (NOT (A OR B))."""
    return _boolean_family(rng, lambda a, b: ~(a | b))


@register("halves_a_minus_b", "logic", "colour c where the first half is coloured and the second is not")
def halves_a_minus_b(rng: np.random.Generator) -> Rule:
    """Output cell is c where the left (top) half is coloured and the right (bottom) is not (A AND NOT B)."""
    return _boolean_family(rng, lambda a, b: a & ~b)


@register("halves_overlay", "logic", "lay the first half over the second: its coloured cells win")
def halves_overlay(rng: np.random.Generator) -> Rule:
    """Output is the left (top) half, with its background cells taken from the right (bottom) half."""
    return _halves_rule(rng, lambda a, b: np.where(a != BG, a, b))
