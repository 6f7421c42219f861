"""ARC grids as inline SVG for the HTML run report, in the standard ARC palette.

`grid_svg(grid, expected)` draws one grid, one `<rect class="cell">` per cell. Cells that differ
from `expected` (when it has the same shape) are crossed out with a dark stroke under a light
one, so the mark shows on every palette colour. Anything that is not a rectangle of colours
0..9 is drawn as a short note instead: a bad grid in a file never stops the report.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .display import PALETTE

# Longest side of a drawn grid in pixels; cells shrink for large grids, within these bounds.
MAX_PX = 180
MAX_CELL = 20
MIN_CELL = 4
GRID_LINES = "#555555"
MARK_DARK, MARK_LIGHT = "#000000", "#FFFFFF"

Cells = list[list[int]]


def as_grid(raw: Any) -> Cells | None:
    """A rectangle of colours 0..9 from a list of lists (or a numpy array), else None."""
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if not isinstance(raw, list) or not raw or not all(isinstance(row, list) for row in raw):
        return None
    width = len(raw[0])
    if width == 0 or any(len(row) != width for row in raw):
        return None
    for row in raw:
        for c in row:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < len(PALETTE):
                return None
    return [list(row) for row in raw]


def shape_text(grid: Cells) -> str:
    return f"{len(grid)}x{len(grid[0])}"


def wrong_cells(grid: Cells, expected: Cells) -> list[tuple[int, int]] | None:
    """(row, column) of every cell that differs from expected; None when the shapes differ."""
    if len(grid) != len(expected) or len(grid[0]) != len(expected[0]):
        return None
    return [(r, c) for r, (row, want) in enumerate(zip(grid, expected))
            for c, (v, w) in enumerate(zip(row, want)) if v != w]


def cell_size(rows: int, cols: int) -> int:
    return max(MIN_CELL, min(MAX_CELL, MAX_PX // max(rows, cols)))


def _lines(rows: int, cols: int, s: int) -> str:
    """One path for all the grid lines between cells."""
    d = "".join(f"M0 {r * s}H{cols * s}" for r in range(1, rows))
    d += "".join(f"M{c * s} 0V{rows * s}" for c in range(1, cols))
    return f'<path d="{d}" stroke="{GRID_LINES}" stroke-width="1"/>' if d else ""


def _cross(r: int, c: int, s: int) -> str:
    inset = max(1, s // 6)
    x0, y0, x1, y1 = c * s + inset, r * s + inset, (c + 1) * s - inset, (r + 1) * s - inset
    d = f"M{x0} {y0}L{x1} {y1}M{x0} {y1}L{x1} {y0}"
    width = max(1.0, s / 8)
    return (f'<g class="wrong"><path d="{d}" stroke="{MARK_DARK}" stroke-width="{2.5 * width:g}"/>'
            f'<path d="{d}" stroke="{MARK_LIGHT}" stroke-width="{width:g}"/></g>')


def grid_svg(raw: Any, expected: Any = None, label: str = "grid") -> str:
    """One grid as an inline `<svg>`; with `expected` of the same shape, wrong cells crossed out.

    `label` names the grid for screen readers and the tooltip (it is escaped here).
    """
    grid = as_grid(raw)
    if grid is None:
        return f'<p class="bad-grid">{escape(label)}: not a grid of colours 0..9</p>'
    rows, cols = len(grid), len(grid[0])
    s = cell_size(rows, cols)
    want = as_grid(expected) if expected is not None else None
    wrong = (wrong_cells(grid, want) or []) if want is not None else []
    name = escape(f"{label} {shape_text(grid)}")
    parts = [f'<svg class="grid" xmlns="http://www.w3.org/2000/svg" width="{cols * s}" '
             f'height="{rows * s}" viewBox="0 0 {cols * s} {rows * s}" role="img" aria-label="{name}">',
             f"<title>{name}</title>"]
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            parts.append(f'<rect class="cell" x="{c * s}" y="{r * s}" width="{s}" height="{s}" '
                         f'fill="{PALETTE[v]}"/>')
    parts.append(_lines(rows, cols, s))
    parts.extend(_cross(r, c, s) for r, c in wrong)
    parts.append("</svg>")
    return "".join(parts)
