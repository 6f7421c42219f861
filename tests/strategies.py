"""Hypothesis strategies for grids, tasks and views."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arc_efe.data.tasks import Pair, Task
from arc_efe.data.views import View


@st.composite
def grids(draw, max_side: int = 30):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(arrays(np.uint8, (h, w), elements=st.integers(0, 9)))


@st.composite
def tasks(draw, max_side: int = 8):
    n_train = draw(st.integers(1, 5))
    n_test = draw(st.integers(1, 3))
    train = tuple(Pair(draw(grids(max_side)), draw(grids(max_side))) for _ in range(n_train))
    test = tuple(Pair(draw(grids(max_side)), draw(st.one_of(st.none(), grids(max_side))))
                 for _ in range(n_test))
    return Task("h", train, test)


@st.composite
def views(draw, n_demos: int | None = None):
    k = draw(st.integers(0, 7))
    colours = tuple(draw(st.permutations(range(10))))
    order = tuple(draw(st.permutations(range(n_demos)))) if n_demos is not None else None
    return View(k, colours, order)
