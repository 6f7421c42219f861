"""Training sequences: a query seen through a view, its inverse task, and padded batches
(packed batches: `packing.py`).

An `Example` is one token sequence with the place of its answer. For the consistency term
each forward example also records, for every cell of the original (un-viewed) answer grid,
where that cell sits in the example's answer tokens (`cell_pos`) and which vocabulary
index holds each original colour (`vocab_map`), so that two views' predictions can be
compared cell by cell and colour by colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .dataset import Query
from .tasks import Grid, Pair, answer_shape
from .tokens import PAD, VOCAB_SIZE, Encoded, SequenceTooLong, encode_task
from .views import View, dihedral

NON_COLOUR_TOKENS = list(range(10, VOCAB_SIZE))


@dataclass
class Example:
    tokens: list[int]
    answer_start: int  # index of the first answer token in `tokens`
    answer_len: int
    kind: str = "forward"  # "forward" or "inverse" (predict the input)
    cell_pos: np.ndarray | None = None  # original cell (row-major) -> index within the answer
    vocab_map: list[int] | None = None  # original token -> token under the view
    dropped: int = 0
    context_end: int = 0  # tokens before the query's IN marker: the demonstrations


def _context_end(prompt: list[int], query_input) -> int:
    return len(prompt) - (query_input.shape[0] * (query_input.shape[1] + 1) + 2)


def view_pairs(pairs: Sequence[Pair], view: View) -> list[Pair]:
    """Apply a view's grid transform to pairs and its demonstration order to their order."""
    mapped = [Pair(view.apply_grid(p.input), None if p.output is None else view.apply_grid(p.output))
              for p in pairs]
    if view.demo_order is not None:
        mapped = [mapped[i] for i in view.demo_order]
    return mapped


def view_prompt(demos: Sequence[Pair], query_input: Grid, view: View, max_len: int | None,
                in_context: bool = True, shape_rule: bool = True) -> tuple[Encoded | None, tuple[int, int] | None]:
    """The prompt that asks for a query's answer through `view`: the demonstrations (none
    without `in_context`; dropped from the end to fit max_len) and the query input, ending at
    its OUT marker; None when not even the query fits. With `shape_rule`, also the answer's
    shape in the view's frame when the demonstrations agree on one (`answer_shape`)."""
    pairs, q_in = view_pairs(demos, view), view.apply_grid(query_input)
    shape = answer_shape(pairs, q_in) if shape_rule else None
    try:
        return encode_task(pairs if in_context else [], q_in, None, max_len), shape
    except SequenceTooLong:
        return None, shape


def cell_positions(h: int, w: int, k: int) -> np.ndarray:
    """For each original cell (row-major), its index in the answer tokens of dihedral view k."""
    viewed = dihedral(np.arange(h * w).reshape(h, w), k)
    vh, vw = viewed.shape
    rows, cols = np.divmod(np.arange(vh * vw), vw)
    pos = np.empty(h * w, dtype=np.int64)
    pos[viewed.reshape(-1)] = rows * (vw + 1) + cols
    return pos


def forward_example(query: Query, view: View, max_len: int | None) -> Example:
    ctx = view_pairs(query.context, view)
    target = query.target
    q_in = view.apply_grid(target.input)
    q_out = view.apply_grid(target.output)
    enc = encode_task(ctx, q_in, q_out, max_len)
    h, w = target.output.shape
    return Example(enc.tokens, len(enc.prompt), len(enc.answer), "forward",
                   cell_positions(h, w, view.dihedral), list(view.colours) + NON_COLOUR_TOKENS,
                   enc.dropped, _context_end(enc.prompt, q_in))


def inverse_example(query: Query, view: View, max_len: int | None) -> Example:
    """The inverse task: predict the query's input from its output, demonstrations reversed."""
    ctx = [Pair(p.output, p.input) for p in view_pairs(query.context, view)]
    target = query.target
    q_in = view.apply_grid(target.output)
    enc = encode_task(ctx, q_in, view.apply_grid(target.input), max_len)
    return Example(enc.tokens, len(enc.prompt), len(enc.answer), "inverse", dropped=enc.dropped,
                   context_end=_context_end(enc.prompt, q_in))


@dataclass
class Batch:
    """Examples laid out in rows: one per row, right-padded (`collate`), or several per row
    (`packing.pack`). Either way the N answer tokens come in example order."""
    input_ids: torch.Tensor  # (R, L), PAD where no example is
    attention_mask: torch.Tensor | None  # (R, L) 1 on tokens; None when packed (see position_ids)
    rows: torch.Tensor  # (N,) batch row of each answer token
    cols: torch.Tensor  # (N,) position whose logits predict that token
    targets: torch.Tensor  # (N,)
    offsets: list[int]  # start of each example's answer tokens within the N
    position_ids: torch.Tensor | None = None  # (R, L) restarting at 0 for every packed example
    token_example: torch.Tensor | None = None  # (R, L) example of each token, -1 on padding
    example_row: list[int] | None = None  # row of each example (default: its index)
    example_start: list[int] | None = None  # first column of each example (default: 0)
    real_tokens: int | None = None
    segments: list[list[tuple[int, int]]] | None = None  # per row: (start, end) of each sequence

    @property
    def n_tokens(self) -> int:
        if self.real_tokens is not None:
            return self.real_tokens
        return int(self.attention_mask.sum())

    @property
    def packed(self) -> bool:
        return self.token_example is not None

    def place(self, i: int, pos: int) -> tuple[int, int]:
        """(row, column) of position `pos` of example i."""
        if self.example_row is None:
            return i, pos
        return self.example_row[i], self.example_start[i] + pos

    def spread(self, per_example: torch.Tensor | None) -> torch.Tensor | None:
        """Per-example vectors (E, H) as the model takes them: (E, H) for padded rows, one
        vector per token (R, L, H) for packed rows (zero on padding)."""
        if per_example is None or not self.packed:
            return per_example
        padded = torch.cat([per_example.new_zeros((1, per_example.shape[-1])), per_example])
        return padded[self.token_example + 1]

    def model_inputs(self) -> dict[str, torch.Tensor | None]:
        """Keyword arguments for the backbone. Packed rows pass no mask but position ids
        that restart at every example: transformers' Qwen2 (5.x) then builds a block-diagonal
        causal mask from them (`find_packed_sequence_indices`), and flash attention uses
        them as sequence boundaries."""
        if self.packed:
            return {"attention_mask": None, "position_ids": self.position_ids,
                    "packed_segments": self.segments}
        return {"attention_mask": self.attention_mask}

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.rows), move(self.cols),
                     move(self.targets), self.offsets, move(self.position_ids), move(self.token_example),
                     self.example_row, self.example_start, self.real_tokens, self.segments)


def pad_rows(rows: Sequence[Sequence[int]], left: bool = False,
             width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both (len(rows), width) long: each row of tokens followed by PAD (preceded
    by it with `left`, so that every row ends in the last column); the mask is 1 on tokens.
    `width` defaults to the longest row."""
    width = max(len(r) for r in rows) if width is None else width
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        at = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, at] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, at] = 1
    return ids, mask


def collate(examples: Sequence[Example]) -> Batch:
    ids, mask = pad_rows([e.tokens for e in examples])
    rows, cols, targets, offsets = [], [], [], []
    n = 0
    for b, e in enumerate(examples):
        # logits at position t predict token t + 1
        positions = range(e.answer_start - 1, e.answer_start - 1 + e.answer_len)
        rows += [b] * e.answer_len
        cols += positions
        targets += e.tokens[e.answer_start: e.answer_start + e.answer_len]
        offsets.append(n)
        n += e.answer_len
    return Batch(ids, mask, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets), offsets)


def aligned_cells(answer_logits: torch.Tensor, offsets: list[int], examples: Sequence[Example],
                  pairs: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of two views of the same queries, lined up by original cell and colour.

    `answer_logits` (N, V) are a batch's logits at its answer tokens; each pair (i, j) names
    two examples of one query. Returns two (M, V) tensors over all M cells of those queries.
    """
    side_a, side_b = [], []
    for i, j in pairs:
        for k, side in ((i, side_a), (j, side_b)):
            e = examples[k]
            idx = torch.as_tensor(e.cell_pos + offsets[k], device=answer_logits.device)
            vmap = torch.as_tensor(e.vocab_map, device=answer_logits.device)
            side.append(answer_logits[idx][:, vmap])
    if not side_a:
        empty = answer_logits.new_zeros((0, answer_logits.shape[-1]))
        return empty, empty
    return torch.cat(side_a), torch.cat(side_b)
