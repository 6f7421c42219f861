import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_efe.data.tasks import grids_equal, make_grid
from arc_efe.data.views import View, all_dihedral_views, random_view

from strategies import grids, tasks, views


def _same_task(a, b):
    assert a.id == b.id and len(a.train) == len(b.train) and len(a.test) == len(b.test)
    for pa, pb in zip(a.train + a.test, b.train + b.test):
        assert grids_equal(pa.input, pb.input)
        assert (pa.output is None and pb.output is None) or grids_equal(pa.output, pb.output)


@given(grids(), views())
def test_inverse_restores_any_grid(grid, view):
    out = view.invert_grid(view.apply_grid(grid))
    assert out.dtype == grid.dtype and grids_equal(out, grid)


@settings(max_examples=60)
@given(st.data())
def test_inverse_restores_any_task(data):
    task = data.draw(tasks())
    view = data.draw(views(n_demos=len(task.train)))
    _same_task(view.invert_task(view.apply_task(task)), task)


def test_the_eight_dihedral_transforms_are_distinct():
    g = make_grid([[1, 2, 3], [4, 5, 6]])
    images = {tuple(map(tuple, v.apply_grid(g))) for v in all_dihedral_views()}
    assert len(images) == 8
    assert View(1).apply_grid(g).tolist() == np.rot90(g).tolist()
    assert View(4).apply_grid(g).tolist() == g.T.tolist()


def test_view_is_consistent_across_a_task():
    g = make_grid([[1, 0], [0, 2]])
    from arc_efe.data.tasks import Pair, Task
    task = Task("t", (Pair(g, g), Pair(g, g)), (Pair(g, g),))
    v = View(3, (0, 5, 7, 1, 2, 3, 4, 6, 8, 9), (1, 0))
    out = v.apply_task(task)
    expected = v.apply_grid(g)
    for p in out.train + out.test:
        assert grids_equal(p.input, expected) and grids_equal(p.output, expected)


def test_demo_order_is_applied_and_inverted():
    from arc_efe.data.tasks import Pair, Task
    pairs = tuple(Pair(make_grid([[k]]), make_grid([[k]])) for k in range(4))
    task = Task("t", pairs, (Pair(make_grid([[9]])),))
    v = View(0, demo_order=(2, 0, 3, 1))
    assert [int(p.input[0, 0]) for p in v.apply_task(task).train] == [2, 0, 3, 1]
    _same_task(v.invert_task(v.apply_task(task)), task)


def test_random_view_keeps_background_by_default():
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = random_view(rng, n_demos=3)
        assert v.colours[0] == 0 and sorted(v.colours) == list(range(10))
        assert sorted(v.demo_order) == [0, 1, 2]
    moved = [random_view(rng, keep_background=False).colours[0] for _ in range(50)]
    assert any(c != 0 for c in moved)


def test_invalid_views_are_refused():
    with pytest.raises(ValueError):
        View(8)
    with pytest.raises(ValueError):
        View(0, (0,) * 10)
    with pytest.raises(ValueError):
        View(0, demo_order=(0, 0))
