"""Object-level helpers for the families: connected components (BFS, no scipy), random
connected shapes, placing shapes and rectangles that do not touch, shifting, gravity, rays,
isolated pixels and enclosed-region detection. Grids are small (at most 30 x 30), so plain
Python is fast enough.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..tasks import Grid

# Order matters: random_shape(weighted=True) lists free neighbours in this order.
ORTHOGONAL = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIRECTIONS = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}
DIAGONALS = {"down_right": (1, 1), "down_left": (1, -1), "up_right": (-1, 1), "up_left": (-1, -1)}
# np.rot90 turns that bring each direction to "down" (rotate back with -k).
_TURNS_TO_DOWN = {"down": 0, "up": 2, "right": -1, "left": 1}


@dataclass(frozen=True)
class Obj:
    """One connected component: its cells (row-major order) and its most common colour."""

    cells: tuple[tuple[int, int], ...]
    colour: int

    @property
    def size(self) -> int:
        return len(self.cells)

    @property
    def rows(self) -> np.ndarray:
        return np.array([r for r, _ in self.cells], dtype=np.int64)

    @property
    def cols(self) -> np.ndarray:
        return np.array([c for _, c in self.cells], dtype=np.int64)

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) with exclusive bottom/right."""
        rows, cols = self.rows, self.cols
        return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1

    def touches_border(self, h: int, w: int) -> bool:
        return any(r == 0 or c == 0 or r == h - 1 or c == w - 1 for r, c in self.cells)

    def is_rectangle(self) -> bool:
        r0, c0, r1, c1 = self.bbox
        return self.size == (r1 - r0) * (c1 - c0)

    def crop(self, grid: Grid, background: int = 0) -> Grid:
        """The object's bounding box cut from `grid`, with every cell not of the object as background."""
        r0, c0, r1, c1 = self.bbox
        out = np.full((r1 - r0, c1 - c0), background, dtype=np.uint8)
        rows, cols = self.rows, self.cols
        out[rows - r0, cols - c0] = grid[rows, cols]
        return out


def components(grid: Grid, background: int = 0, by_colour: bool = True, diagonal: bool = False) -> list[Obj]:
    """Connected components of non-background cells, in row-major order of their first cell:
    4-connected, or 8-connected when `diagonal`.

    With `by_colour` a component holds one colour; without it, any touching non-background
    cells belong together (multi-coloured objects).
    """
    steps = ORTHOGONAL + tuple(DIAGONALS.values()) if diagonal else ORTHOGONAL
    g = grid.tolist()
    h, w = len(g), len(g[0])
    seen = [[False] * w for _ in range(h)]
    objs: list[Obj] = []
    for r in range(h):
        for c in range(w):
            if seen[r][c] or g[r][c] == background:
                continue
            seen[r][c] = True
            queue = deque([(r, c)])
            cells = []
            while queue:
                y, x = queue.popleft()
                cells.append((y, x))
                for dy, dx in steps:
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and not seen[ny][nx]:
                        v = g[ny][nx]
                        if v != background and (not by_colour or v == g[y][x]):
                            seen[ny][nx] = True
                            queue.append((ny, nx))
            cells.sort()
            counts = np.bincount([g[y][x] for y, x in cells], minlength=10)
            objs.append(Obj(tuple(cells), int(counts.argmax())))
    return objs


def _free_neighbours(box: np.ndarray, r: int, c: int) -> list[tuple[int, int]]:
    """The 4-neighbours of (r, c) inside `box` that are not set, in ORTHOGONAL order."""
    h, w = box.shape
    return [(r + dr, c + dc) for dr, dc in ORTHOGONAL
            if 0 <= r + dr < h and 0 <= c + dc < w and not box[r + dr, c + dc]]


def random_shape(rng: np.random.Generator, n_cells: int, max_h: int = 4, max_w: int = 4,
                 weighted: bool = False) -> np.ndarray:
    """A random 4-connected boolean shape of `n_cells` cells (capped by the max_h x max_w box),
    grown from one random cell and cropped to its bounding box.

    Each step adds one free neighbour of the shape. By default it is drawn uniformly from the
    distinct free neighbours (in sorted order). With `weighted` it is drawn from a running list
    that gains a cell's free neighbours whenever the cell is added, so a cell touching more of
    the shape is likelier; a drawn entry that is already set is skipped (its draw still spent).
    The two ways draw differently from `rng`: each caller keeps the one it was written with.
    """
    n_cells = max(1, min(n_cells, max_h * max_w))
    box = np.zeros((max_h, max_w), dtype=bool)
    r, c = int(rng.integers(0, max_h)), int(rng.integers(0, max_w))
    box[r, c] = True
    count = 1
    if weighted:
        frontier = _free_neighbours(box, r, c)
        while count < n_cells and frontier:
            r, c = frontier.pop(int(rng.integers(0, len(frontier))))
            if box[r, c]:
                continue
            box[r, c] = True
            count += 1
            frontier += _free_neighbours(box, r, c)
    else:
        while count < n_cells:
            frontier = sorted({cell for y, x in zip(*np.nonzero(box))
                               for cell in _free_neighbours(box, int(y), int(x))})
            r, c = frontier[int(rng.integers(len(frontier)))]
            box[r, c] = True
            count += 1
    rows, cols = np.nonzero(box)
    return box[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _dilate(mask: np.ndarray, gap: int) -> np.ndarray:
    """`mask` padded by `gap` on each side and grown by `gap` cells in all 8 directions."""
    h, w = mask.shape
    out = np.zeros((h + 2 * gap, w + 2 * gap), dtype=bool)
    for dr in range(2 * gap + 1):
        for dc in range(2 * gap + 1):
            out[dr:dr + h, dc:dc + w] |= mask
    return out


def _clear_of(taken: np.ndarray, r: int, c: int, halo: np.ndarray, gap: int) -> bool:
    """Whether `halo` (a footprint grown by `gap`, see `_dilate`) for a footprint whose top-left
    is at (r, c) misses every taken cell; the parts of the halo outside the grid are ignored."""
    h, w = taken.shape
    top, left = r - gap, c - gap
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + halo.shape[0], h), min(left + halo.shape[1], w)
    return not (taken[y0:y1, x0:x1] & halo[y0 - top:y1 - top, x0 - left:x1 - left]).any()


def place_rects(rng: np.random.Generator, h: int, w: int, n: int, colours: list[int],
                max_side: int = 4, background: int = 0, gap: int = 1) -> Grid | None:
    """n solid rectangles of random sizes (drawn again on every try) whose boxes stay at least
    `gap` cells apart; None if one does not fit in 50 tries."""
    g = np.full((h, w), background, dtype=np.uint8)
    taken = np.zeros((h, w), dtype=bool)
    for k in range(n):
        for _ in range(50):
            rh, rw = int(rng.integers(1, max_side + 1)), int(rng.integers(1, max_side + 1))
            if rh > h or rw > w:
                continue
            r, c = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
            if not _clear_of(taken, r, c, np.ones((rh + 2 * gap, rw + 2 * gap), dtype=bool), gap):
                continue
            g[r:r + rh, c:c + rw] = colours[k % len(colours)]
            taken[r:r + rh, c:c + rw] = True
            break
        else:
            return None
    return g


def place_shapes(rng: np.random.Generator, h: int, w: int, shapes: list[np.ndarray], colours: list,
                 background: int = 0, gap: int = 1, tries: int = 60, grid: Grid | None = None,
                 by_box: bool = False) -> Grid | None:
    """Paint each boolean shape at a random spot (up to `tries` draws of a spot each) where it
    stays at least `gap` cells (8-neighbourhood) away from everything already there; None if one
    does not fit. With `by_box` each shape counts as its whole bounding box, so the boxes stay
    `gap` apart. colours[k] is an int, or an array of the shape's size (several colours).
    `grid`, if given, is the starting canvas (its non-background cells count as taken)."""
    g = np.full((h, w), background, dtype=np.uint8) if grid is None else grid.copy()
    taken = g != background
    for shape, colour in zip(shapes, colours):
        sh, sw = shape.shape
        if sh > h or sw > w:
            return None
        footprint = np.ones_like(shape) if by_box else shape
        halo = _dilate(footprint, gap)
        for _ in range(tries):
            r, c = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
            if not _clear_of(taken, r, c, halo, gap):
                continue
            g[r:r + sh, c:c + sw][shape] = colour[shape] if isinstance(colour, np.ndarray) else colour
            taken[r:r + sh, c:c + sw] |= footprint
            break
        else:
            return None
    return g


def scatter_shapes(rng: np.random.Generator, h: int, w: int, shapes: list[np.ndarray], colours: list[int],
                   background: int = 0, gap: int = 1) -> Grid:
    """Like `place_shapes`, but drops shapes from the end until the rest fit (always a grid;
    the first shape must fit in h x w)."""
    for n in range(len(shapes), 0, -1):
        for _ in range(4):
            placed = place_shapes(rng, h, w, shapes[:n], colours[:n], background, gap)
            if placed is not None:
                return placed
    g = np.full((h, w), background, dtype=np.uint8)
    sh, sw = shapes[0].shape
    g[:sh, :sw][shapes[0]] = colours[0]
    return g


def shift(grid: Grid, dr: int, dc: int, background: int = 0) -> Grid:
    """Every non-background cell moved by (dr, dc); cells leaving the grid are lost."""
    h, w = grid.shape
    out = np.full_like(grid, background)
    rows, cols = np.nonzero(grid != background)
    nr, nc = rows + dr, cols + dc
    keep = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
    out[nr[keep], nc[keep]] = grid[rows[keep], cols[keep]]
    return out


def _cells_fall_down(grid: Grid, background: int) -> Grid:
    out = np.full_like(grid, background)
    h = grid.shape[0]
    for c in range(grid.shape[1]):
        col = grid[:, c]
        vals = col[col != background]
        if len(vals):
            out[h - len(vals):, c] = vals
    return out


def _objects_fall_down(grid: Grid, background: int) -> Grid:
    h = grid.shape[0]
    objs = components(grid, background, by_colour=False)
    occupied = grid != background
    drop = [0] * len(objs)
    order = sorted(range(len(objs)), key=lambda i: -int(objs[i].rows.max()))
    moved = True
    while moved:  # repeat until settled, so an object resting on a later-falling one follows it
        moved = False
        for i in order:
            rows, cols = objs[i].rows + drop[i], objs[i].cols
            occupied[rows, cols] = False
            while rows.max() + 1 < h and not occupied[rows + 1, cols].any():
                rows = rows + 1
                drop[i] += 1
                moved = True
            occupied[rows, cols] = True
    out = np.full_like(grid, background)
    for obj, d in zip(objs, drop):
        out[obj.rows + d, obj.cols] = grid[obj.rows, obj.cols]
    return out


def gravity(grid: Grid, direction: str, whole_objects: bool, background: int = 0) -> Grid:
    """Cells (or whole 4-connected objects) fall towards `direction` until they hit the border
    or another cell."""
    k = _TURNS_TO_DOWN[direction]
    turned = np.rot90(grid, k)
    fallen = _objects_fall_down(turned, background) if whole_objects else _cells_fall_down(turned, background)
    return np.ascontiguousarray(np.rot90(fallen, -k))


def enclosed(grid: Grid, background: int = 0) -> np.ndarray:
    """Boolean mask of background cells that cannot reach the border through background (4-conn)."""
    h, w = grid.shape
    free = grid == background
    reached = np.zeros((h, w), dtype=bool)
    queue = deque((r, c) for r in range(h) for c in range(w)
                  if (r in (0, h - 1) or c in (0, w - 1)) and free[r, c])
    for r, c in queue:
        reached[r, c] = True
    while queue:
        r, c = queue.popleft()
        for dr, dc in ORTHOGONAL:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and free[nr, nc] and not reached[nr, nc]:
                reached[nr, nc] = True
                queue.append((nr, nc))
    return free & ~reached


def ray(h: int, w: int, r: int, c: int, dr: int, dc: int) -> list[tuple[int, int]]:
    """Cells from (r, c) (exclusive) stepping by (dr, dc) up to the border."""
    out = []
    r, c = r + dr, c + dc
    while 0 <= r < h and 0 <= c < w:
        out.append((r, c))
        r, c = r + dr, c + dc
    return out


def isolated_pixels(rng: np.random.Generator, h: int, w: int, n: int, spacing: int = 1,
                    tries: int = 200) -> list[tuple[int, int]]:
    """Up to n distinct cells at Chebyshev distance > spacing from each other (at least one)."""
    cells: list[tuple[int, int]] = []
    for _ in range(tries):
        if len(cells) >= n:
            break
        r, c = int(rng.integers(h)), int(rng.integers(w))
        if all(max(abs(r - y), abs(c - x)) > spacing for y, x in cells):
            cells.append((r, c))
    return cells

