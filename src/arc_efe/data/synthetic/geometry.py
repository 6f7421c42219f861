"""Geometry families: fixed rigid transforms, shifts, scaling, tiling and cropping.

Each family draws its parameters (offset, factor, tile layout, target colour) when the rule is
made; `apply` is then a pure function of the input grid.
"""

from __future__ import annotations

import numpy as np

from . import Rule, register
from ._grids import any_size, pick_colours, random_offset, random_size, varied_grid
from ._objects import place_shapes, random_shape, shift


def _content_sampler(lo: int = 2, hi: int = 10, max_h: int | None = None, max_w: int | None = None):
    """sample_input for transforms that work on any grid: random size, colours and content."""
    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = any_size(rng, lo, hi)
        if max_h is not None:
            h = min(h, max_h)
        if max_w is not None:
            w = min(w, max_w)
        colours = pick_colours(rng, int(rng.integers(1, 5)))
        return varied_grid(rng, h, w, colours)
    return sample


def _fixed_transform(fn):
    """A family whose whole rule is one fixed transform of any grid."""
    def family(rng: np.random.Generator) -> Rule:
        return Rule(apply=lambda g: fn(g).copy(), sample_input=_content_sampler())
    return family


# --- the seven symmetries of the square (besides the identity) ---------------------------------

@register("flip_lr", "geometry", "mirror the grid left-right")
def flip_lr(rng: np.random.Generator) -> Rule:
    """Output is the input mirrored left-right."""
    return _fixed_transform(np.fliplr)(rng)


@register("flip_ud", "geometry", "mirror the grid top-bottom")
def flip_ud(rng: np.random.Generator) -> Rule:
    """Output is the input mirrored top-bottom."""
    return _fixed_transform(np.flipud)(rng)


@register("rotate_90", "geometry", "rotate the grid 90 degrees clockwise")
def rotate_90(rng: np.random.Generator) -> Rule:
    """Output is the input rotated a quarter turn clockwise."""
    return _fixed_transform(lambda g: np.rot90(g, k=-1))(rng)


@register("rotate_180", "geometry", "rotate the grid 180 degrees")
def rotate_180(rng: np.random.Generator) -> Rule:
    """Output is the input rotated a half turn."""
    return _fixed_transform(lambda g: np.rot90(g, k=2))(rng)


@register("rotate_270", "geometry", "rotate the grid 90 degrees anticlockwise")
def rotate_270(rng: np.random.Generator) -> Rule:
    """Output is the input rotated a quarter turn anticlockwise."""
    return _fixed_transform(lambda g: np.rot90(g, k=1))(rng)


@register("transpose", "geometry", "mirror the grid in its main diagonal")
def transpose(rng: np.random.Generator) -> Rule:
    """Output is the input transposed (rows become columns)."""
    return _fixed_transform(lambda g: g.T)(rng)


@register("anti_transpose", "geometry", "mirror the grid in its anti-diagonal")
def anti_transpose(rng: np.random.Generator) -> Rule:
    """Output is the input mirrored in the anti-diagonal (top-right to bottom-left)."""
    return _fixed_transform(lambda g: np.rot90(g, k=2).T)(rng)


# --- shifts --------------------------------------------------------------------------------------

@register("shift_wrap", "geometry", "shift the content by a fixed offset, wrapping around the edges")
def shift_wrap(rng: np.random.Generator) -> Rule:
    """Every cell moves by a fixed (rows, cols) offset; what leaves one edge re-enters at the other."""
    dr, dc = random_offset(rng)

    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = random_size(rng, 5, 12)
        colours = pick_colours(rng, int(rng.integers(1, 4)))
        return varied_grid(rng, h, w, colours)

    return Rule(apply=lambda g: np.roll(g, (dr, dc), axis=(0, 1)), sample_input=sample)


@register("shift_clip", "geometry", "shift the content by a fixed offset; it falls off the edges")
def shift_clip(rng: np.random.Generator) -> Rule:
    """Every non-background cell moves by a fixed offset; cells pushed off the grid are lost and
    the vacated cells become background (0)."""
    dr, dc = random_offset(rng)

    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = random_size(rng, 5, 12)
        colours = pick_colours(rng, int(rng.integers(1, 4)))
        shapes = [random_shape(rng, int(rng.integers(1, 7)), 4, 4, weighted=True)
                  for _ in range(int(rng.integers(1, 4)))]
        g = place_shapes(rng, h, w, shapes, [colours[k % len(colours)] for k in range(len(shapes))],
                         tries=50, by_box=True)
        return g if g is not None else varied_grid(rng, h, w, colours)

    return Rule(apply=lambda g: shift(g, dr, dc), sample_input=sample)


# --- scaling and tiling ------------------------------------------------------------------------

@register("scale_up", "geometry", "scale the grid up by an integer factor")
def scale_up(rng: np.random.Generator) -> Rule:
    """Every cell becomes a k x k block (k is 2 or 3)."""
    k = int(rng.integers(2, 4))
    ones = np.ones((k, k), dtype=np.uint8)
    return Rule(apply=lambda g: np.kron(g, ones).astype(np.uint8),
                sample_input=_content_sampler(2, 10))


@register("scale_down", "geometry", "scale a grid of k x k blocks down by k")
def scale_down(rng: np.random.Generator) -> Rule:
    """The input is made of k x k blocks of one colour; each block becomes one cell."""
    k = int(rng.integers(2, 4))
    small = _content_sampler(2, min(10, 30 // k))
    return Rule(apply=lambda g: g[::k, ::k].copy(),
                sample_input=lambda rng: np.kron(small(rng), np.ones((k, k), dtype=np.uint8)).astype(np.uint8))


@register("tile", "geometry", "repeat the grid n x m times")
def tile(rng: np.random.Generator) -> Rule:
    """The output is n rows by m columns of copies of the input."""
    n, m = 1, 1
    while (n, m) == (1, 1):
        n, m = (int(v) for v in rng.integers(1, 4, size=2))
    return Rule(apply=lambda g: np.tile(g, (n, m)),
                sample_input=_content_sampler(2, 6, max_h=30 // n, max_w=30 // m))


_MIRROR_LAYOUTS = {
    "lr": lambda g: np.hstack([g, np.fliplr(g)]),
    "ud": lambda g: np.vstack([g, np.flipud(g)]),
    "quad": lambda g: np.vstack([np.hstack([g, np.fliplr(g)]),
                                 np.hstack([np.flipud(g), np.rot90(g, 2)])]),
    "lr3": lambda g: np.hstack([g, np.fliplr(g), g]),
}


@register("tile_mirror", "geometry", "tile the grid with mirrored copies")
def tile_mirror(rng: np.random.Generator) -> Rule:
    """The output places the input next to its mirror images (a fixed layout: side by side,
    stacked, 2 x 2 with all four reflections, or input|mirror|input)."""
    layout = str(rng.choice(list(_MIRROR_LAYOUTS)))
    fn = _MIRROR_LAYOUTS[layout]
    max_w = {"lr": 15, "ud": 30, "quad": 15, "lr3": 10}[layout]
    max_h = {"lr": 30, "ud": 15, "quad": 15, "lr3": 30}[layout]
    return Rule(apply=lambda g: fn(g).copy(),
                sample_input=_content_sampler(2, 7, max_h=max_h, max_w=max_w))


# --- cropping ----------------------------------------------------------------------------------

def _bbox_crop(g: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return g.copy()
    rows, cols = np.nonzero(mask)
    return g[rows.min():rows.max() + 1, cols.min():cols.max() + 1].copy()


@register("crop_object", "geometry", "crop to the bounding box of the only object")
def crop_object(rng: np.random.Generator) -> Rule:
    """The output is the bounding box of the single non-background object (any colours)."""
    def sample(rng: np.random.Generator) -> np.ndarray:
        h, w = random_size(rng, 5, 16)
        shape = random_shape(rng, int(rng.integers(3, 16)), min(h - 1, 6), min(w - 1, 6), weighted=True)
        colours = pick_colours(rng, int(rng.integers(1, 4)))
        paint = rng.choice(colours, size=shape.shape).astype(np.uint8)
        return place_shapes(rng, h, w, [shape], [paint], tries=50, by_box=True)

    return Rule(apply=lambda g: _bbox_crop(g, g != 0), sample_input=sample)


@register("crop_colour_object", "geometry", "crop to the bounding box of the object of one colour")
def crop_colour_object(rng: np.random.Generator) -> Rule:
    """Among several one-coloured objects, the output is the bounding box of the one in a fixed
    colour."""
    target = pick_colours(rng, 1)[0]

    others = [c for c in range(1, 10) if c != target]

    def sample(rng: np.random.Generator) -> np.ndarray:
        while True:
            h, w = random_size(rng, 7, 16)
            colours = [target] + [int(c) for c in rng.choice(others, size=int(rng.integers(1, 4)), replace=False)]
            shapes = [random_shape(rng, int(rng.integers(2, 10)), 4, 4, weighted=True) for _ in colours]
            order = rng.permutation(len(shapes))
            g = place_shapes(rng, h, w, [shapes[i] for i in order], [colours[i] for i in order],
                             tries=50, by_box=True)
            if g is not None:
                return g

    return Rule(apply=lambda g: _bbox_crop(g, g == target), sample_input=sample)
