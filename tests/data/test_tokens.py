import numpy as np
import pytest
from hypothesis import given

from arc_efe.data.sources import EMBEDDED, load_tasks
from arc_efe.data.tasks import Pair, grids_equal, make_grid
from arc_efe.data.tokens import (BOS, END, IN, OUT, ROW, VOCAB_SIZE, SequenceTooLong, answer_tokens,
                                 decode_grid, encode_task, try_decode_grid)
from arc_efe.errors import MalformedGridError

from strategies import grids


def test_vocabulary_is_compact():
    assert VOCAB_SIZE == 16


@given(grids())
def test_roundtrip_any_grid(grid):
    assert grids_equal(decode_grid(answer_tokens(grid)), grid)


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_roundtrip_every_embedded_grid(name):
    n = 0
    for task in load_tasks(name).tasks:
        for pair in task.train + task.test:
            for g in (pair.input, pair.output):
                assert grids_equal(decode_grid(answer_tokens(g)), g), task.id
                n += 1
    assert n > 1000


def test_layout():
    d = Pair(make_grid([[1, 2]]), make_grid([[3], [4]]))
    enc = encode_task([d], make_grid([[5]]), make_grid([[6, 7]]))
    assert enc.prompt == [BOS, IN, 1, 2, ROW, OUT, 3, ROW, 4, ROW, END, IN, 5, ROW, OUT]
    assert enc.answer == [6, 7, ROW, END]
    assert enc.dropped == 0 and enc.kept == (0,)


@pytest.mark.parametrize("tokens,reason", [
    ([1, 2, ROW], "no END"),
    ([END], "empty answer"),
    ([1, 2, END], "not closed"),
    ([1, 2, ROW, 3, ROW, END], "row 1 has 1 cells, row 0 has 2"),
    ([1, ROW, ROW, END], "row 1 is empty"),
    ([1, IN, ROW, END], "inside a grid"),
    ([1] * 31 + [ROW, END], "larger than 30x30"),
    ([1, ROW] * 31 + [END], "larger than 30x30"),
])
def test_malformed_answers_are_reported(tokens, reason):
    with pytest.raises(MalformedGridError, match=reason):
        decode_grid(tokens)
    assert try_decode_grid(tokens) is None


def test_decode_stops_at_first_end():
    assert decode_grid([3, ROW, END, 9, 9]).tolist() == [[3]]


def test_long_tasks_drop_longest_demonstrations_first():
    small = Pair(make_grid([[1]]), make_grid([[1]]))
    big = Pair(make_grid(np.ones((10, 10), int)), make_grid(np.ones((10, 10), int)))
    query = make_grid([[2]])
    full = encode_task([small, big, small], query, make_grid([[3]]))
    limit = len(full.tokens) - 1
    enc = encode_task([small, big, small], query, make_grid([[3]]), max_len=limit)
    assert enc.dropped == 1 and enc.kept == (0, 2)
    assert len(enc.tokens) <= limit
    assert enc.prompt[-4:] == [IN, 2, ROW, OUT]  # the query is never dropped


def test_query_that_cannot_fit_raises():
    q = make_grid(np.zeros((30, 30), int))
    with pytest.raises(SequenceTooLong):
        encode_task([], q, q, max_len=100)


def test_unknown_answer_reserves_room_for_longest_demo_output():
    d = Pair(make_grid([[1]]), make_grid(np.ones((5, 5), int)))
    enc = encode_task([d, d], make_grid([[2]]), None, max_len=len(encode_task([d], make_grid([[2]])).prompt) + 31)
    assert enc.answer is None and enc.dropped == 1
