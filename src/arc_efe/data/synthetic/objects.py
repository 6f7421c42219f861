"""Object families: grids hold a few non-touching objects (4-connected components of a
non-background colour) on background 0; the rule moves, drops, counts, sorts, extracts,
hollows, fills, recolours or deletes them."""

from __future__ import annotations

import numpy as np

from ..tasks import Grid
from . import Rule, register
from ._grids import noise_grid, pick_colours, random_offset, random_size
from ._objects import DIRECTIONS, components, enclosed, gravity, random_shape, scatter_shapes, shift

BG = 0


def _shapes(rng: np.random.Generator, n: int, lo: int = 1, hi: int = 6, max_side: int = 4) -> list[np.ndarray]:
    return [random_shape(rng, int(rng.integers(lo, hi + 1)), max_side, max_side) for _ in range(n)]


def _scene(rng: np.random.Generator, n_lo: int, n_hi: int, colours: list[int], size: tuple[int, int] = (6, 14),
           cells: tuple[int, int] = (1, 6), max_side: int = 4) -> Grid:
    """A grid with n_lo..n_hi random objects, each coloured from `colours`."""
    h, w = random_size(rng, *size)
    n = int(rng.integers(n_lo, n_hi + 1))
    shapes = _shapes(rng, n, *cells, max_side=max_side)
    cols = [int(rng.choice(colours)) for _ in range(n)]
    return scatter_shapes(rng, h, w, shapes, cols, BG)


def _distinct_size_scene(rng: np.random.Generator, colours: list[int], n_lo: int = 2, n_hi: int = 4,
                         cell_lo: int = 1, cell_hi: int = 9, distinct_colours_: bool = False) -> Grid:
    """Objects of pairwise different sizes (so 'largest' / 'smallest' / 'sorted' are unambiguous)."""
    for _ in range(20):
        h, w = random_size(rng, 7, 14)
        n = int(rng.integers(n_lo, n_hi + 1))
        sizes = rng.choice(np.arange(cell_lo, cell_hi + 1), size=n, replace=False)
        shapes = [random_shape(rng, int(s), 4, 4) for s in sizes]
        if distinct_colours_:
            cols = [int(c) for c in rng.choice(colours, size=n, replace=False)]
        else:
            cols = [int(rng.choice(colours)) for _ in range(n)]
        g = scatter_shapes(rng, h, w, shapes, cols, BG)
        found = [o.size for o in components(g, BG)]
        if len(found) >= 2 and len(set(found)) == len(found):
            return g
    return g


@register("move_objects", "objects", "every object moves by one fixed offset")
def move_objects(rng: np.random.Generator) -> Rule:
    """Every object moves by the same offset (dr, dc)."""
    dr, dc = random_offset(rng)

    def sample(r: np.random.Generator) -> Grid:
        inner = _scene(r, 1, 4, list(range(1, 10)), size=(5, 12))
        h, w = inner.shape
        g = np.zeros((h + abs(dr), w + abs(dc)), dtype=np.uint8)
        top, left = max(0, -dr), max(0, -dc)
        g[top:top + h, left:left + w] = inner
        return g

    return Rule(apply=lambda g: shift(g, dr, dc, BG), sample_input=sample)


@register("gravity_cells", "objects", "every coloured cell falls one way until it hits the border or another cell")
def gravity_cells(rng: np.random.Generator) -> Rule:
    """Every non-background cell falls in a fixed direction until blocked (cells stack up)."""
    direction = str(rng.choice(list(DIRECTIONS)))
    colours = pick_colours(rng, int(rng.integers(1, 4)))

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 4, 12)
        return noise_grid(r, h, w, colours, density=float(r.uniform(0.15, 0.4)))

    return Rule(apply=lambda g: gravity(g, direction, whole_objects=False, background=BG), sample_input=sample)


@register("gravity_objects", "objects", "whole objects fall one way, keeping their shape, until they land")
def gravity_objects(rng: np.random.Generator) -> Rule:
    """Every object falls rigidly in a fixed direction until it hits the border or another object."""
    direction = str(rng.choice(list(DIRECTIONS)))

    def sample(r: np.random.Generator) -> Grid:
        return _scene(r, 2, 5, list(range(1, 10)), size=(6, 14), cells=(2, 6), max_side=3)

    return Rule(apply=lambda g: gravity(g, direction, whole_objects=True, background=BG), sample_input=sample)


@register("count_objects", "objects", "output a 1 x N row of a fixed colour, N = number of objects")
def count_objects(rng: np.random.Generator) -> Rule:
    """Output a single row of N cells of colour c, where N is the number of objects."""
    c = int(rng.integers(1, 10))

    def apply(g: Grid) -> Grid:
        n = len(components(g, BG))
        return np.full((1, max(1, min(n, 30))), c if n else BG, dtype=np.uint8)

    def sample(r: np.random.Generator) -> Grid:
        return _scene(r, 1, 7, list(range(1, 10)), size=(5, 13), cells=(1, 5), max_side=3)

    return Rule(apply=apply, sample_input=sample)


@register("sort_objects_by_size", "objects", "output the objects' colours as a column ordered by size")
def sort_objects_by_size(rng: np.random.Generator) -> Rule:
    """Output an N x 1 column of object colours, largest first (or smallest first)."""
    largest_first = bool(rng.random() < 0.5)

    def apply(g: Grid) -> Grid:
        objs = components(g, BG)
        if not objs:
            return np.zeros((1, 1), dtype=np.uint8)
        objs.sort(key=lambda o: (-o.size if largest_first else o.size, o.cells[0]))
        return np.array([[o.colour] for o in objs[:30]], dtype=np.uint8)

    def sample(r: np.random.Generator) -> Grid:
        return _distinct_size_scene(r, list(range(1, 10)), 2, 5, 1, 9, distinct_colours_=True)

    return Rule(apply=apply, sample_input=sample)


def _extract(pick_largest: bool):
    def apply(g: Grid) -> Grid:
        objs = components(g, BG)
        if not objs:
            return g.copy()
        best = max(objs, key=lambda o: o.size) if pick_largest else min(objs, key=lambda o: o.size)
        return best.crop(g, BG)
    return apply


@register("extract_largest_object", "objects", "crop the grid to the largest object")
def extract_largest_object(rng: np.random.Generator) -> Rule:
    """Output the largest object cropped to its bounding box."""
    colours = pick_colours(rng, int(rng.integers(1, 5)))
    return Rule(apply=_extract(True), sample_input=lambda r: _distinct_size_scene(r, colours, 2, 4, 2, 10))


@register("extract_smallest_object", "objects", "crop the grid to the smallest object")
def extract_smallest_object(rng: np.random.Generator) -> Rule:
    """Output the smallest object cropped to its bounding box."""
    colours = pick_colours(rng, int(rng.integers(1, 5)))
    return Rule(apply=_extract(False), sample_input=lambda r: _distinct_size_scene(r, colours, 2, 4, 2, 10))


@register("hollow_rectangles", "objects", "solid rectangles keep their border, interior becomes background")
def hollow_rectangles(rng: np.random.Generator) -> Rule:
    """Every solid rectangle at least 3 x 3 becomes its outline (interior set to background)."""
    colours = pick_colours(rng, int(rng.integers(1, 4)))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        for o in components(g, BG):
            r0, c0, r1, c1 = o.bbox
            if o.is_rectangle() and r1 - r0 >= 3 and c1 - c0 >= 3:
                out[r0 + 1:r1 - 1, c0 + 1:c1 - 1] = BG
        return out

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 7, 16)
        n = int(r.integers(1, 5))
        shapes = [np.ones((int(r.integers(3, 7)), int(r.integers(3, 7))), dtype=bool)]
        shapes += [np.ones((int(r.integers(1, 6)), int(r.integers(1, 6))), dtype=bool) for _ in range(n - 1)]
        return scatter_shapes(r, h, w, shapes, [int(r.choice(colours)) for _ in shapes], BG)

    return Rule(apply=apply, sample_input=sample)


@register("fill_enclosed", "objects", "background cells enclosed by an object get a fixed colour")
def fill_enclosed(rng: np.random.Generator) -> Rule:
    """Background regions that cannot reach the border (holes inside objects) are filled with colour c."""
    c = int(rng.integers(1, 10))
    colours = pick_colours(rng, int(rng.integers(1, 4)), exclude=(BG, c))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        out[enclosed(g, BG)] = c
        return out

    def ring(r: np.random.Generator) -> np.ndarray:
        rh, rw = int(r.integers(3, 7)), int(r.integers(3, 7))
        m = np.ones((rh, rw), dtype=bool)
        m[1:-1, 1:-1] = False
        if r.random() < 0.3:  # an opened ring: its inside is not enclosed
            side = int(r.integers(4))
            if side == 0:
                m[0, int(r.integers(1, rw - 1))] = False
            elif side == 1:
                m[-1, int(r.integers(1, rw - 1))] = False
            elif side == 2:
                m[int(r.integers(1, rh - 1)), 0] = False
            else:
                m[int(r.integers(1, rh - 1)), -1] = False
        return m

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 6, 15)
        shapes = [ring(r) for _ in range(int(r.integers(1, 4)))]
        shapes += _shapes(r, int(r.integers(0, 3)), 1, 5, 3)
        return scatter_shapes(r, h, w, shapes, [int(r.choice(colours)) for _ in shapes], BG)

    return Rule(apply=apply, sample_input=sample)


@register("recolour_border_objects", "objects", "objects touching the grid border take a fixed colour")
def recolour_border_objects(rng: np.random.Generator) -> Rule:
    """Every object that touches the grid's edge is recoloured to c; the others stay."""
    c = int(rng.integers(1, 10))
    colours = pick_colours(rng, int(rng.integers(1, 4)), exclude=(BG, c))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        h, w = g.shape
        for o in components(g, BG):
            if o.touches_border(h, w):
                out[o.rows, o.cols] = c
        return out

    return Rule(apply=apply, sample_input=lambda r: _scene(r, 2, 6, colours, size=(5, 12), cells=(1, 6), max_side=3))


@register("delete_colour_objects", "objects", "objects of one given colour are deleted")
def delete_colour_objects(rng: np.random.Generator) -> Rule:
    """Every object of colour k disappears (becomes background); others stay."""
    k, *others = pick_colours(rng, int(rng.integers(2, 5)))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        out[g == k] = BG
        return out

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 6, 14)
        n = int(r.integers(2, 7))
        cols = [k, int(r.choice(others))] + [int(r.choice([k] + others)) for _ in range(n - 2)]
        order = r.permutation(n)
        shapes = _shapes(r, n, 1, 6, 3)
        return scatter_shapes(r, h, w, [shapes[i] for i in order], [cols[i] for i in order], BG)

    return Rule(apply=apply, sample_input=sample)


@register("recolour_largest_object", "objects", "the largest object takes a fixed colour")
def recolour_largest_object(rng: np.random.Generator) -> Rule:
    """The largest object is recoloured to c, in place; the others stay."""
    c = int(rng.integers(1, 10))
    colours = pick_colours(rng, int(rng.integers(1, 4)), exclude=(BG, c))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        objs = components(g, BG)
        if objs:
            best = max(objs, key=lambda o: o.size)
            out[best.rows, best.cols] = c
        return out

    return Rule(apply=apply, sample_input=lambda r: _distinct_size_scene(r, colours, 2, 5, 1, 10))
