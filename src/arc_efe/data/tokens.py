"""The compact ARC vocabulary and the layout of a task as a token sequence.

One token per cell (colours 0-9), `ROW` after every row, `IN`/`OUT` before an input/output
grid, `END` after each output, `PAD` for padding and `BOS` to open a sequence: 16 tokens.

A query is laid out as

    BOS  (IN grid OUT grid END) for each demonstration  IN query-input OUT | answer

where everything before `|` is the prompt and the answer is `grid END`. A grid is its rows
in order, each row's cells followed by `ROW`.

Length policy: when `max_len` is given and the sequence would exceed it, demonstrations
are dropped, longest first, until it fits; the query is never dropped. `Encoded.dropped`
says how many went. If the query alone does not fit, `SequenceTooLong` is raised. When the
answer is unknown (inference) the budget reserves room for an answer as long as the
longest demonstration output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import MalformedGridError
from .tasks import MAX_SIDE, NUM_COLOURS, Grid, Pair

ROW, IN, OUT, END, PAD, BOS = range(NUM_COLOURS, NUM_COLOURS + 6)
VOCAB_SIZE = NUM_COLOURS + 6
# Text of each token, used to show sequences and to pick matching tokens in a pretrained
# tokenizer (colours are digits, as Qwen's tokenizer has a single token for each digit).
TOKEN_TEXT = tuple(str(c) for c in range(NUM_COLOURS)) + ("\n", "I", "O", ".", "_", "^")


class SequenceTooLong(ValueError):
    """The query and its answer alone exceed the maximum length."""


@dataclass(frozen=True)
class Encoded:
    prompt: list[int]
    answer: list[int] | None  # None when the query's output is unknown
    dropped: int  # demonstrations left out to fit max_len
    kept: tuple[int, ...]  # indices of the demonstrations that were kept, in order

    @property
    def tokens(self) -> list[int]:
        return self.prompt + (self.answer or [])


def grid_tokens(grid: Grid) -> list[int]:
    h, w = grid.shape
    out = np.empty((h, w + 1), dtype=np.int64)
    out[:, :w] = grid
    out[:, w] = ROW
    return out.reshape(-1).tolist()


def answer_tokens(grid: Grid) -> list[int]:
    return grid_tokens(grid) + [END]


def pair_tokens(pair: Pair) -> list[int]:
    if pair.output is None:
        raise ValueError("a demonstration needs an output grid")
    return [IN, *grid_tokens(pair.input), OUT, *answer_tokens(pair.output)]


def encode_task(demos: Sequence[Pair], query_input: Grid, query_output: Grid | None = None,
                max_len: int | None = None) -> Encoded:
    """Tokens for one query conditioned on `demos`; see the module docstring for the policy."""
    demo_toks = [pair_tokens(p) for p in demos]
    query = [IN, *grid_tokens(query_input), OUT]
    answer = answer_tokens(query_output) if query_output is not None else None
    kept = list(range(len(demos)))
    if max_len is not None:
        if answer is not None:
            reserve = len(answer)
        else:
            reserve = max((len(answer_tokens(p.output)) for p in demos if p.output is not None),
                          default=0)
        fixed = 1 + len(query) + reserve
        if fixed > max_len:
            raise SequenceTooLong(
                f"query needs {fixed} tokens with its answer, more than max_len={max_len}")
        total = fixed + sum(len(t) for t in demo_toks)
        # Longest first; among equals the later demonstration goes first.
        for i in sorted(kept, key=lambda i: (len(demo_toks[i]), i), reverse=True):
            if total <= max_len:
                break
            total -= len(demo_toks[i])
            kept.remove(i)
    prompt = [BOS]
    for i in kept:
        prompt += demo_toks[i]
    prompt += query
    return Encoded(prompt, answer, len(demos) - len(kept), tuple(kept))


def decode_grid(tokens: Sequence[int]) -> Grid:
    """Turn answer tokens (up to the first END) into a grid, or raise MalformedGridError."""
    toks = list(tokens)
    if END not in toks:
        raise MalformedGridError("no END token: the answer was cut off")
    toks = toks[: toks.index(END)]
    if not toks:
        raise MalformedGridError("empty answer")
    if toks[-1] != ROW:
        raise MalformedGridError("last row is not closed by a row-end token")
    rows: list[list[int]] = [[]]
    for t in toks[:-1]:
        if t == ROW:
            rows.append([])
        elif 0 <= t < NUM_COLOURS:
            rows[-1].append(t)
        else:
            raise MalformedGridError(f"token {TOKEN_TEXT[t] if 0 <= t < VOCAB_SIZE else t!r} "
                                     "inside a grid")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if not r:
            raise MalformedGridError(f"row {i} is empty")
        if len(r) != width:
            raise MalformedGridError(f"row {i} has {len(r)} cells, row 0 has {width}")
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        raise MalformedGridError(f"{len(rows)}x{width} is larger than {MAX_SIDE}x{MAX_SIDE}")
    return np.asarray(rows, dtype=np.uint8)


def try_decode_grid(tokens: Sequence[int]) -> Grid | None:
    """Like decode_grid, but None for a malformed answer."""
    try:
        return decode_grid(tokens)
    except MalformedGridError:
        return None


def show_tokens(tokens: Sequence[int]) -> str:
    return "".join(TOKEN_TEXT[t] for t in tokens)
