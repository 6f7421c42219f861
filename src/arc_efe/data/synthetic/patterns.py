"""Pattern and line families: join aligned pairs, shoot rays, complete symmetric or tiled
patterns under a mask, frame the grid, draw diagonals / crosses / rings around pixels.
Background is 0 unless a family says otherwise."""

from __future__ import annotations

import numpy as np

from ..tasks import Grid
from . import Rule, register
from ._grids import noise_grid, pick_colours, random_size
from ._objects import DIAGONALS, DIRECTIONS, isolated_pixels, ray

BG = 0


def _paint_rays(g: Grid, steps: list[tuple[int, int]]) -> Grid:
    """Each non-background cell (row-major order) paints background cells along each step
    direction, up to the border, in its own colour; the first ray to reach a cell wins."""
    out = g.copy()
    h, w = g.shape
    for r, c in zip(*np.nonzero(g != BG)):
        colour = g[r, c]
        for dr, dc in steps:
            for y, x in ray(h, w, int(r), int(c), dr, dc):
                if out[y, x] == BG:
                    out[y, x] = colour
    return out


@register("connect_aligned_pairs", "patterns", "join two same-coloured cells in one row or column with a line")
def connect_aligned_pairs(rng: np.random.Generator) -> Rule:
    """Two cells of one colour in the same row (or column) are joined by a straight line, drawn
    in their colour or in a fixed line colour, over background only."""
    line = int(pick_colours(rng, 1)[0]) if rng.random() < 0.4 else None

    def apply(g: Grid) -> Grid:
        out = g.copy()
        for colour in np.unique(g):
            if colour == BG:
                continue
            paint = colour if line is None else line
            for view, oview in ((g, out), (g.T, out.T)):  # rows, then columns (transposed views)
                for i in range(view.shape[0]):
                    js = np.nonzero(view[i] == colour)[0]
                    if len(js) == 2:
                        seg = slice(js[0] + 1, js[1])
                        oview[i, seg] = np.where(view[i, seg] == BG, paint, oview[i, seg])
        return out

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 6, 15)
        g = np.zeros((h, w), dtype=np.uint8)
        taken = np.zeros((h + 2, w + 2), dtype=bool)  # padded by one: taken[y + 1, x + 1]
        n_pairs, n_single = int(r.integers(1, 4)), int(r.integers(0, 3))
        cols = pick_colours(r, n_pairs + n_single, exclude=(BG,) if line is None else (BG, line))
        for colour in cols[:n_pairs]:
            for _ in range(30):
                if r.random() < 0.5:
                    y = int(r.integers(h))
                    x0 = int(r.integers(0, w - 2))
                    x1 = int(r.integers(x0 + 2, w))
                    y0, y1 = y, y
                else:
                    x = int(r.integers(w))
                    y0 = int(r.integers(0, h - 2))
                    y1 = int(r.integers(y0 + 2, h))
                    x0, x1 = x, x
                if taken[y0 + 1:y1 + 2, x0 + 1:x1 + 2].any():
                    continue
                g[y0, x0] = g[y1, x1] = colour
                taken[y0:y1 + 3, x0:x1 + 3] = True  # the segment and a one-cell halo
                break
        for colour in cols[n_pairs:]:  # lone pixels: no partner, no line
            for _ in range(30):
                y, x = int(r.integers(h)), int(r.integers(w))
                if not taken[y + 1, x + 1]:
                    g[y, x] = colour
                    taken[y:y + 3, x:x + 3] = True
                    break
        return g

    return Rule(apply=apply, sample_input=sample)


@register("extend_rays", "patterns", "each pixel shoots a ray of its colour to the border in one fixed direction")
def extend_rays(rng: np.random.Generator) -> Rule:
    """Every coloured pixel extends a line of its colour in a fixed (orthogonal or diagonal)
    direction up to the grid's border."""
    steps = {**DIRECTIONS, **DIAGONALS}
    name = str(rng.choice(list(steps)))
    dr, dc = steps[name]
    colours = pick_colours(rng, int(rng.integers(1, 4)))

    def line_index(y: int, x: int) -> int:
        if dc == 0:
            return x
        if dr == 0:
            return y
        return y - x if dr == dc else y + x

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 5, 14)
        g = np.zeros((h, w), dtype=np.uint8)
        used: set[int] = set()
        for y, x in isolated_pixels(r, h, w, int(r.integers(1, 5))):
            if line_index(y, x) not in used:  # rays never cross another pixel or ray
                used.add(line_index(y, x))
                g[y, x] = int(r.choice(colours))
        return g

    return Rule(apply=lambda g: _paint_rays(g, [(dr, dc)]), sample_input=sample)


def _mask_fill(x: Grid, mask_colour: int, candidates: list[Grid]) -> Grid:
    """Masked cells take the value of the first candidate view whose cell there is not masked."""
    out = x.copy()
    todo = x == mask_colour
    for view in candidates:
        use = todo & (view != mask_colour)
        out[use] = view[use]
        todo &= ~use
    return out


def _random_rect(r: np.random.Generator, h: int, w: int, max_h: int, max_w: int) -> tuple[slice, slice]:
    rh, rw = int(r.integers(1, max(1, max_h) + 1)), int(r.integers(1, max(1, max_w) + 1))
    rh, rw = min(rh, h), min(rw, w)
    y, x = int(r.integers(0, h - rh + 1)), int(r.integers(0, w - rw + 1))
    return slice(y, y + rh), slice(x, x + rw)


@register("complete_mirror_symmetry", "patterns", "restore a mirror-symmetric pattern where a rectangle was masked")
def complete_mirror_symmetry(rng: np.random.Generator) -> Rule:
    """The grid is mirror-symmetric (left-right or top-bottom); cells of the mask colour are
    replaced by their mirror image. Output is the full grid."""
    left_right = bool(rng.random() < 0.5)
    mask = int(rng.integers(1, 10))
    palette = pick_colours(rng, int(rng.integers(2, 5)), exclude=(mask,))

    def flip(g: Grid) -> Grid:
        return g[:, ::-1] if left_right else g[::-1, :]

    def sample(r: np.random.Generator) -> Grid:
        h, hw = int(r.integers(3, 15)), int(r.integers(2, 8))  # along / across the axis
        half = r.choice(palette, size=(h, hw)).astype(np.uint8)
        middle = [r.choice(palette, size=(h, 1)).astype(np.uint8)] if r.random() < 0.5 else []
        full = np.hstack([half, *middle, half[:, ::-1]])
        rows, cols = _random_rect(r, h, hw, 4, hw - 1)
        if r.random() < 0.5:  # mask the right half instead
            cols = slice(full.shape[1] - cols.stop, full.shape[1] - cols.start)
        x = full.copy()
        x[rows, cols] = mask
        return np.ascontiguousarray(x if left_right else x.T)

    return Rule(apply=lambda x: _mask_fill(x, mask, [flip(x)]), sample_input=sample)


@register("complete_four_way_symmetry", "patterns", "restore a 4-way symmetric pattern where a rectangle was masked")
def complete_four_way_symmetry(rng: np.random.Generator) -> Rule:
    """The grid is symmetric left-right and top-bottom; masked cells take the value of their
    left-right, else top-bottom, else point mirror. Output is the full grid."""
    mask = int(rng.integers(1, 10))
    palette = pick_colours(rng, int(rng.integers(2, 5)), exclude=(mask,))

    def apply(x: Grid) -> Grid:
        return _mask_fill(x, mask, [x[:, ::-1], x[::-1, :], x[::-1, ::-1]])

    def sample(r: np.random.Generator) -> Grid:
        for _ in range(20):
            q = r.choice(palette, size=(int(r.integers(2, 8)), int(r.integers(2, 8)))).astype(np.uint8)
            if r.random() < 0.5:
                q = np.hstack([q, r.choice(palette, size=(q.shape[0], 1)).astype(np.uint8)])
            top = np.hstack([q, q[:, ::-1][:, 1:] if q.shape[1] % 2 else q[:, ::-1]])
            full = np.vstack([top, top[::-1][1:] if r.random() < 0.5 else top[::-1]])
            x = full.copy()
            rows, cols = _random_rect(r, *full.shape, max(1, full.shape[0] // 2), max(1, full.shape[1] // 2))
            x[rows, cols] = mask
            if np.array_equal(apply(x), full):
                return x
        return x

    return Rule(apply=apply, sample_input=sample)


def _fill_by_period(x: Grid, mask: int) -> Grid:
    """Find the smallest period (ph, pw) consistent with all unmasked cells, every residue class
    having a known cell, and fill the masked cells from it. Unchanged if none fits."""
    h, w = x.shape
    known = x != mask
    cands = sorted(((ph, pw) for ph in range(1, h // 2 + 1) for pw in range(1, w // 2 + 1)),
                   key=lambda p: (p[0] * p[1], p))
    for ph, pw in cands:
        out = x.copy()
        ok = True
        for i in range(ph):
            for j in range(pw):
                vals = x[i::ph, j::pw][known[i::ph, j::pw]]
                if len(vals) == 0 or (vals != vals[0]).any():
                    ok = False
                    break
                out[i::ph, j::pw] = vals[0]
            if not ok:
                break
        if ok:
            return out
    return x.copy()


@register("complete_tiling", "patterns", "restore a periodic (tiled) pattern where regions were masked")
def complete_tiling(rng: np.random.Generator) -> Rule:
    """The grid repeats a small tile; masked cells (mask colour) are restored from the period."""
    mask = int(rng.integers(1, 10))
    palette = pick_colours(rng, int(rng.integers(2, 5)), exclude=(mask,))

    def sample(r: np.random.Generator) -> Grid:
        for _ in range(20):
            ph, pw = int(r.integers(1, 5)), int(r.integers(1, 5))
            tile = r.choice(palette, size=(ph, pw)).astype(np.uint8)
            if len(np.unique(tile)) < 2:
                continue
            h = int(r.integers(max(6, 2 * ph), 19))
            w = int(r.integers(max(6, 2 * pw), 19))
            full = np.tile(tile, (h // ph + 1, w // pw + 1))[:h, :w]
            x = full.copy()
            for _ in range(int(r.integers(1, 3))):
                rows, cols = _random_rect(r, h, w, max(1, h // 3), max(1, w // 3))
                x[rows, cols] = mask
            if np.array_equal(_fill_by_period(x, mask), full):
                return x
        return x

    return Rule(apply=lambda x: _fill_by_period(x, mask), sample_input=sample)


@register("draw_grid_border", "patterns", "the outermost ring of cells takes a fixed colour")
def draw_grid_border(rng: np.random.Generator) -> Rule:
    """Overwrite the grid's outer ring of cells with colour c (size unchanged)."""
    c = int(rng.integers(1, 10))
    colours = pick_colours(rng, int(rng.integers(1, 4)), exclude=(BG, c))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        out[0, :] = out[-1, :] = c
        out[:, 0] = out[:, -1] = c
        return out

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 3, 14)
        return noise_grid(r, h, w, colours, density=float(r.uniform(0.0, 0.5)))

    return Rule(apply=apply, sample_input=sample)


@register("pad_grid_border", "patterns", "surround the grid with a one-cell frame of a fixed colour")
def pad_grid_border(rng: np.random.Generator) -> Rule:
    """Output is the input with a new one-cell frame of colour c around it (2 rows and columns larger)."""
    c = int(rng.integers(0, 10))
    colours = pick_colours(rng, int(rng.integers(1, 4)), exclude=(BG, c))

    def apply(g: Grid) -> Grid:
        return np.pad(g, 1, constant_values=c).astype(np.uint8)

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 2, 12)
        return noise_grid(r, h, w, colours, density=float(r.uniform(0.2, 0.7)))

    return Rule(apply=apply, sample_input=sample)


def _pixels_rule(rng: np.random.Generator, steps: list[tuple[int, int]]) -> Rule:
    """Sparse pixels of one colour per input; each paints rays along `steps`."""
    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 5, 15)
        g = np.zeros((h, w), dtype=np.uint8)
        colour = int(r.integers(1, 10))
        for y, x in isolated_pixels(r, h, w, int(r.integers(1, 4)), spacing=1):
            g[y, x] = colour
        return g

    return Rule(apply=lambda g: _paint_rays(g, steps), sample_input=sample)


@register("diagonals_through_pixels", "patterns", "draw both diagonal lines through each pixel, in its colour")
def diagonals_through_pixels(rng: np.random.Generator) -> Rule:
    """Each coloured pixel extends along both diagonals to the border, over background only."""
    return _pixels_rule(rng, list(DIAGONALS.values()))


@register("cross_through_pixels", "patterns", "draw the full row and column through each pixel, in its colour")
def cross_through_pixels(rng: np.random.Generator) -> Rule:
    """Each coloured pixel extends along its row and column to the border, over background only."""
    return _pixels_rule(rng, list(DIRECTIONS.values()))


@register("surround_pixels", "patterns", "put a 3 x 3 ring of a fixed colour around every pixel")
def surround_pixels(rng: np.random.Generator) -> Rule:
    """Each coloured pixel gets its 8 neighbours (those on background) painted colour c."""
    c = int(rng.integers(1, 10))
    colours = pick_colours(rng, int(rng.integers(1, 3)), exclude=(BG, c))

    def apply(g: Grid) -> Grid:
        out = g.copy()
        h, w = g.shape
        for r, cc in zip(*np.nonzero(g != BG)):
            y0, y1, x0, x1 = max(r - 1, 0), min(r + 2, h), max(cc - 1, 0), min(cc + 2, w)
            box = out[y0:y1, x0:x1]
            box[g[y0:y1, x0:x1] == BG] = c
        return out

    def sample(r: np.random.Generator) -> Grid:
        h, w = random_size(r, 4, 14)
        g = np.zeros((h, w), dtype=np.uint8)
        for y, x in isolated_pixels(r, h, w, int(r.integers(1, 5)), spacing=2):
            g[y, x] = int(r.choice(colours))
        return g

    return Rule(apply=apply, sample_input=sample)
