"""Draw grids and tasks in a terminal, with the standard ARC palette (24-bit colour)."""

from __future__ import annotations

from ..data.tasks import Grid, Task

PALETTE = (  # the standard ARC colours, 0..9
    "#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
    "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25",
)
_RESET = "\x1b[0m"


def _bg(colour: int) -> str:
    hexa = PALETTE[colour].lstrip("#")
    r, g, b = (int(hexa[i:i + 2], 16) for i in (0, 2, 4))
    return f"\x1b[48;2;{r};{g};{b}m"


def grid_lines(grid: Grid | None, colour: bool = True) -> list[str]:
    """Each cell two characters wide: a coloured block, or its digit when colour is off."""
    if grid is None:
        return ["?"]
    if colour:
        return ["".join(f"{_bg(int(c))}  " for c in row) + _RESET for row in grid]
    return ["".join(f"{int(c)} " for c in row) for row in grid]


def _width(grid: Grid | None) -> int:
    return 1 if grid is None else 2 * grid.shape[1]


def side_by_side(grids: list[Grid | None], titles: list[str], colour: bool = True, gap: int = 3) -> str:
    blocks = [grid_lines(g, colour) for g in grids]
    widths = [max(_width(g), len(t)) for g, t in zip(grids, titles)]
    height = max(len(b) for b in blocks)
    lines = ["".ljust(gap).join(t.ljust(w) for t, w in zip(titles, widths))]
    for r in range(height):
        parts = []
        for block, g, w in zip(blocks, grids, widths):
            if r < len(block):
                parts.append(block[r] + " " * (w - _width(g)))
            else:
                parts.append(" " * w)
        lines.append((" " * gap).join(parts))
    return "\n".join(lines)


def _shape(grid: Grid | None) -> str:
    return "?" if grid is None else f"{grid.shape[0]}x{grid.shape[1]}"


def render_task(task: Task, colour: bool = True) -> str:
    out = [f"task {task.id}: {len(task.train)} demonstrations, {len(task.test)} test inputs"]
    for name, pairs in (("train", task.train), ("test", task.test)):
        for k, p in enumerate(pairs):
            out.append("")
            out.append(side_by_side(
                [p.input, p.output],
                [f"{name}[{k}] input {_shape(p.input)}", f"output {_shape(p.output)}"],
                colour))
    return "\n".join(out)
