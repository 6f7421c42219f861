"""Grid positions: every token's place in the task, and the embeddings that give it to the model.

A task is one token stream (`tokens.py`), so in 1D "the cell below" is a row width away and
"the mirrored cell" is somewhere else in every grid: a plain transformer must learn 2D
geometry before any rule. Here every token also gets its place, read from the stream itself
(the IN/OUT/ROW/END markers say everything):

- role: which kind of grid it belongs to: demonstration input or output, test input, draft,
  answer (0 for BOS and padding). IN/OUT open the grid they name and END closes an output.
- pair: the demonstration's number (1, 2, ...; 0 outside demonstrations); computed, but no
  embedding uses it (see GridPositions).
- row, col: the cell's row and column; a ROW token sits after its row's last cell (col =
  width), END below the last row (row = height, col 0).
- next row, next col: the place of the cell written after this token if the row goes on
  (the cell to the right; after ROW the start of the next row; after IN/OUT the corner).
  A causal model predicts the next token at each position, so this is the place its
  prediction is about: copying a cell becomes "attend to the cell at my next place".
- mirrored row and column (`2d-mirror` only): height-1-row and width-1-col of grids the model
  reads whole (everything but the answer, whose size is still being written). A flip or a
  rotation then becomes "attend to the cell whose mirrored column equals my column": one
  fixed attention pattern for every grid size, where absolute columns alone need the width.
- paired colours (`2d-paired` only, on top of `2d-mirror`): for a token of an output grid
  (demonstration output, draft, answer), the colour that the paired input (the grid under the
  sequence's last IN so far) holds at each image of the next place under the eight symmetries
  of a rectangle and under tiling (`PAIRED`); `NO_COLOUR` outside the input and elsewhere.
  "The output is the input flipped" then needs no attention at all: the answer is one of the
  token's own channels, and the model's job is to learn from the demonstrations which channel
  (and which colour map) the rule uses. This is an ARC prior like ViTARC's object positions:
  it makes the commonest same-size and tiling rules one step from the input, where `2d` and
  `2d-mirror` leave them to be found through attention (benchmarks/single_rules.py measures
  the difference).
- matches (`2d-match` only, on top of `2d-paired`): for each cell of an output grid and each
  of the nine images, whether the cell has the paired colour of its own place (the previous
  token's paired colour): `MATCH_NONE` where there is none, `MATCH_YES`, `MATCH_NO`. The
  evidence for a rule is then a flag on every demonstration cell, which the model can average
  over the demonstrations with one attention head; with `2d-paired` alone it must first bring
  the neighbour's channel to the token and compare the two. Which rule and which colours a
  task uses are still learned from its demonstrations: the flags only say what each cell
  agrees with. benchmarks/icl_study.py compares the kinds side by side (its figures are in the
  README, "Grid positions").

`GridPositions` adds one learned embedding per channel (role, row, col, next row, next col;
`2d-mirror` also the mirrored row and col; `2d-paired` those and the nine paired colours;
`2d-match` those and the nine matches) to
the token embeddings (the Qwen
rotary 1D positions stay as they are). Zero-initialised (`zero_init`, used for pretrained
backbones) it changes nothing until training moves it. `--positions 1d` leaves it out.

The places depend only on the tokens, so packed rows (each sequence starts with BOS),
left-padded decoding prompts and teacher forcing all agree; an incremental decoder needs the
place of the newest token only (`newest_places`), which depends on nothing before the
sequence's last IN (the query input, its answer so far, any drafts), so it reads BOS and that
tail rather than a whole prompt of thousands of tokens at every step.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.tasks import MAX_SIDE, NUM_COLOURS
from ..data.tokens import BOS, END, IN, OUT, PAD, ROW

POSITIONS = ("1d", "2d", "2d-mirror", "2d-paired", "2d-match")
# The default for a new backbone, trained or untrained: measured against 2d, 2d-mirror and 2d-paired by
# benchmarks/icl_study.py, learning.py and single_rules.py (README, "Grid positions").
DEFAULT_POSITIONS = "2d-match"
ROLE_NONE, ROLE_DEMO_IN, ROLE_DEMO_OUT, ROLE_TEST_IN, ROLE_DRAFT, ROLE_ANSWER = range(6)
N_ROLES = 6
N_PAIRS = 16  # demonstrations past the 15th share the last row
NO_PLACE = MAX_SIDE + 1  # row/column index of tokens that are no cell (markers, padding)
N_PLACES = MAX_SIDE + 2
CHANNELS = ("role", "pair", "row", "col", "next_row", "next_col", "mirror_row", "mirror_col")
# `2d-paired`: where the cell written next would come from in the paired input grid, for each
# of the eight symmetries of a rectangle and for tiling (output row, col -> input row, col;
# h, w: the input's height and width)
PAIRED = {
    "same": lambda r, c, h, w: (r, c),
    "flip_lr": lambda r, c, h, w: (r, w - 1 - c),
    "flip_ud": lambda r, c, h, w: (h - 1 - r, c),
    "rotate_180": lambda r, c, h, w: (h - 1 - r, w - 1 - c),
    "transpose": lambda r, c, h, w: (c, r),
    "rotate_cw": lambda r, c, h, w: (h - 1 - c, r),
    "rotate_ccw": lambda r, c, h, w: (c, w - 1 - r),
    "anti_transpose": lambda r, c, h, w: (h - 1 - c, w - 1 - r),
    "tile": lambda r, c, h, w: (r % h.clamp_min(1), c % w.clamp_min(1)),
}
NO_COLOUR = NUM_COLOURS  # paired colour of tokens that have none (inputs, markers, outside the input)
MATCH_NONE, MATCH_YES, MATCH_NO = range(3)  # `2d-match`: does an output cell have its paired colour?


def _last_index(flag: torch.Tensor) -> torch.Tensor:
    """For each position, the index of the last True at or before it (-1 if none)."""
    idx = torch.arange(flag.shape[-1], device=flag.device).expand_as(flag)
    return torch.where(flag, idx, torch.full_like(idx, -1)).cummax(-1).values


def _at(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values[b, index[b, t]] with index -1 reading 0."""
    got = values.gather(-1, index.clamp_min(0))
    return torch.where(index >= 0, got, torch.zeros_like(got))


def _group_total(values: torch.Tensor, group: torch.Tensor, reduce: str) -> torch.Tensor:
    """For each position, `reduce` ("sum" or "amax") of `values` over its group (ids >= 0)."""
    b, n = values.shape
    out = torch.zeros((b, n + 1), dtype=values.dtype, device=values.device)
    out = out.scatter_reduce(-1, group + 1, values, reduce=reduce, include_self=True)
    return out.gather(-1, group + 1)


@torch.no_grad()
def grid_places(ids: torch.Tensor, paired: bool = False, matches: bool = False) -> torch.Tensor:
    """(B, L, 8) long: role, pair, row, col, next row, next col, mirrored row, mirrored col of every token of
    `ids` (B, L); with `paired`, (B, L, 8 + 9): then the paired input's colour at each of
    `PAIRED`'s places; with `matches` too, (B, L, 8 + 18): then the nine matches. See the module
    docstring; malformed streams give clamped, finite places."""
    if ids.ndim == 1:
        return grid_places(ids[None], paired, matches)[0]
    ids = ids.long()
    is_bos, is_in, is_out, is_row = ids == BOS, ids == IN, ids == OUT, ids == ROW
    is_cell = ids < NUM_COLOURS
    opener = is_bos | is_in | is_out
    idx = torch.arange(ids.shape[-1], device=ids.device).expand_as(ids)

    # rows and columns within the grid the token belongs to
    last_open = _last_index(opener)
    rows_so_far = is_row.long().cumsum(-1)
    row = rows_so_far - is_row.long() - _at(rows_so_far, last_open)
    last_break = _last_index(opener | is_row)  # at or before t; a ROW's own row began before it
    before = torch.cat([torch.full_like(last_break[..., :1], -1), last_break[..., :-1]], -1)
    col = idx - before - 1
    in_grid = is_cell | is_row | (ids == END)
    row = torch.where(in_grid, row.clamp(0, MAX_SIDE), torch.full_like(row, NO_PLACE))
    col = torch.where(in_grid, col.clamp(0, MAX_SIDE), torch.full_like(col, NO_PLACE))

    # which grid: demonstrations come before the sequence's last IN; after it, the test input,
    # then drafts, and the answer under the last OUT
    seq_start = _last_index(is_bos)
    ins = is_in.long().cumsum(-1)
    outs = is_out.long().cumsum(-1)
    in_no = ins - _at(ins, seq_start)  # IN markers of this sequence so far
    out_no = outs - _at(outs, seq_start)
    seq = is_bos.long().cumsum(-1)  # sequence number within the row (pads before BOS: 0)
    last_in = in_no == _group_total(in_no, seq, "amax")
    last_out = out_no == _group_total(out_no, seq, "amax")
    opened_by = _at(ids, last_open)
    reading_output = (opened_by == OUT) & ~is_bos
    reading_input = (opened_by == IN) & ~is_bos
    role = torch.full_like(ids, ROLE_NONE)
    role = torch.where(reading_input, torch.where(last_in, ROLE_TEST_IN, ROLE_DEMO_IN), role)
    query_out = torch.where(last_out, ROLE_ANSWER, ROLE_DRAFT)
    role = torch.where(reading_output, torch.where(last_in, query_out, ROLE_DEMO_OUT), role)
    role = torch.where(ids == PAD, torch.full_like(role, ROLE_NONE), role)
    pair = torch.where((role == ROLE_DEMO_IN) | (role == ROLE_DEMO_OUT),
                       in_no.clamp(1, N_PAIRS - 1), torch.zeros_like(in_no))

    # mirrored places: height and width of each grid, known for every grid but the answer
    grid = opener.long().cumsum(-1)
    height = _group_total(is_row.long(), grid, "sum")
    width = _group_total(torch.where(is_cell, col + 1, torch.zeros_like(col)), grid, "amax")
    mirrored = is_cell & (role != ROLE_ANSWER) & (role != ROLE_NONE)
    none = torch.full_like(row, NO_PLACE)
    mirror_row = torch.where(mirrored, (height - 1 - row).clamp(0, MAX_SIDE), none)
    mirror_col = torch.where(mirrored, (width - 1 - col).clamp(0, MAX_SIDE), none)

    # the place of the cell the model writes next, if the row goes on: what a causal model's
    # prediction at this token is about
    next_row = torch.where(is_cell, row, torch.where(is_row, (row + 1).clamp(max=MAX_SIDE), none))
    next_col = torch.where(is_cell, (col + 1).clamp(max=MAX_SIDE), torch.where(is_row, 0, none))
    starts = is_in | is_out
    next_row = torch.where(starts, 0, next_row)
    next_col = torch.where(starts, 0, next_col)
    places = [role, pair, row, col, next_row, next_col, mirror_row, mirror_col]
    if paired or matches:
        colours = _paired_colours(ids, is_in, reading_output, seq_start, height, width, next_row, next_col)
        places += colours
        if matches:
            places += _matches(ids, colours, reading_output & is_cell)
    return torch.stack(places, -1)


def _paired_colours(ids, is_in, reading_output, seq_start, height, width, next_row, next_col):
    """For each token of an output grid (demonstration output, draft, answer), the colour of
    its paired input (the grid under the last IN) at each of `PAIRED`'s images of the place
    written next; `NO_COLOUR` elsewhere and where that image falls outside the input."""
    in_at = _last_index(is_in)
    has_input = reading_output & (in_at >= 0) & (in_at >= seq_start) & (next_row != NO_PLACE)
    h, w = _at(height, in_at), _at(width, in_at)
    colours = []
    for image in PAIRED.values():
        r, c = image(next_row, next_col, h, w)
        inside = has_input & (r >= 0) & (r < h) & (c >= 0) & (c < w)
        at = (in_at + 1 + r * (w + 1) + c).clamp(0, ids.shape[-1] - 1)
        colours.append(torch.where(inside, ids.gather(-1, at), torch.full_like(ids, NO_COLOUR)))
    return colours


def _matches(ids, colours, output_cell):
    """For each paired colour channel, whether each output cell has the paired colour of its
    own place: that of the token before it, whose next place the cell is."""
    flags = []
    for c in colours:
        own = torch.cat([torch.full_like(c[..., :1], NO_COLOUR), c[..., :-1]], -1)
        own = torch.where(output_cell, own, torch.full_like(own, NO_COLOUR))
        flags.append(torch.where(own == NO_COLOUR, MATCH_NONE, torch.where(ids == own, MATCH_YES, MATCH_NO)))
    return flags


class GridPositions(nn.Module):
    """Learned embeddings of the channels of `grid_places`, summed."""

    def __init__(self, hidden: int, kind: str = "2d", zero_init: bool = False, std: float = 0.02):
        """`std`: the spread of the sum of the place tables at initialisation (each gets
        std / sqrt(tables)), so the places start no louder than a token embedding. Each
        paired-colour table gets `std` itself: a colour as loud as the token's own, which
        test-time training from scratch then picks up before it memorises where the cells
        of each demonstration are (benchmarks/single_rules.py; a quarter of it solved fewer
        flips and recolourings); so does each match table of `2d-match`."""
        super().__init__()
        if kind not in POSITIONS or kind == "1d":
            raise ValueError(f"GridPositions takes one of {', '.join(POSITIONS[1:])}, got {kind!r}")
        self.kind = kind
        # The demonstration number (`pair`) is a place too but gets no table: test-time
        # training sees n-1 demonstrations and the test prompt n, so the last number would be
        # one the model never trained on (measured: it broke answers that were right without it).
        sizes = {"role": N_ROLES, "row": N_PLACES, "col": N_PLACES,
                 "next_row": N_PLACES, "next_col": N_PLACES}
        if kind != "2d":
            sizes.update(mirror_row=N_PLACES, mirror_col=N_PLACES)
        if kind in ("2d-paired", "2d-match"):
            sizes.update({f"paired_{name}": NUM_COLOURS + 1 for name in PAIRED})
        if kind == "2d-match":
            sizes.update({f"match_{name}": 3 for name in PAIRED})
        self.tables = nn.ModuleDict({name: nn.Embedding(n, hidden) for name, n in sizes.items()})
        n_places = sum(name in CHANNELS for name in sizes)
        with torch.no_grad():
            for name, t in self.tables.items():
                spread = std / n_places ** 0.5 if name in CHANNELS else std
                t.weight.zero_() if zero_init else t.weight.normal_(0.0, spread)
        channels = CHANNELS + tuple(f"{group}_{name}" for group in ("paired", "match") for name in PAIRED)
        self.channels = [channels.index(name) for name in self.tables]

    def places(self, ids: torch.Tensor) -> torch.Tensor:
        """The places of `ids` this module reads (`grid_places`, with the paired colours for
        `2d-paired`, and the matches too for `2d-match`)."""
        return grid_places(ids, paired=self.kind in ("2d-paired", "2d-match"), matches=self.kind == "2d-match")

    def forward(self, places: torch.Tensor) -> torch.Tensor:
        out = None
        for channel, table in zip(self.channels, self.tables.values()):
            e = table(places[..., channel])
            out = e if out is None else out + e
        return out


def attach(model: nn.Module, kind: str, zero_init: bool) -> None:
    """Give `model` (a causal LM) grid positions of `kind` as `model.arc_positions`, in
    float32 on the model's device (they always train in float32, like the head)."""
    if kind not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {kind!r}")
    if kind == "1d":
        return
    emb = model.get_input_embeddings()
    model.arc_positions = GridPositions(emb.embedding_dim, kind, zero_init).to(emb.weight.device)


def grid_module(backbone: nn.Module) -> GridPositions | None:
    """The backbone's grid positions (through a peft or torch.compile wrapper), or None."""
    return getattr(backbone, "arc_positions", None)


def backbone_places(backbone: nn.Module, ids: torch.Tensor) -> torch.Tensor | None:
    """The places of `ids` (B, L) that the backbone's grid positions read, or None without them."""
    grid = grid_module(backbone)
    return None if grid is None else grid.places(ids)


def newest_places(backbone: nn.Module, ids: torch.Tensor) -> torch.Tensor | None:
    """`backbone_places(backbone, ids)[:, -1:]` for rows that hold a query's last IN (incremental
    decoding), computed from BOS and the tail from the earliest last IN of the rows."""
    grid = grid_module(backbone)
    if grid is None:
        return None
    is_in = ids == IN
    if not bool(is_in.any(-1).all()):
        return grid.places(ids)[:, -1:]
    start = int(_last_index(is_in)[:, -1].min())
    tail = torch.cat([torch.full_like(ids[:, :1], BOS), ids[:, start:]], 1)
    return grid.places(tail)[:, -1:]


def position_parameters(backbone: nn.Module) -> list[nn.Parameter]:
    """The grid position embeddings' parameters (none with `--positions 1d`)."""
    grid = grid_module(backbone)
    return [] if grid is None else list(grid.parameters())


def embed(backbone: nn.Module, ids: torch.Tensor, memory: torch.Tensor | None = None,
          places: torch.Tensor | None = None) -> torch.Tensor:
    """Input embeddings of `ids` (B, L): token embedding + grid positions (when the backbone
    has them; `places` (B, L, channels) for tokens that continue an earlier sequence, else read from
    `ids`) + Solver2's memory readout (B, H) or (B, L, H)."""
    embeds = backbone.get_input_embeddings()(ids)
    grid = grid_module(backbone)
    if grid is not None:
        embeds = embeds + grid(grid.places(ids) if places is None else places).to(embeds.dtype)
    if memory is not None:
        memory = memory.to(embeds.dtype)
        embeds = embeds + (memory.unsqueeze(1) if memory.ndim == 2 else memory)
    return embeds
