"""Object, pattern and logic families of `arc_efe.data.synthetic`: every family makes valid,
consistent, reproducible tasks; a few rules checked on hand-made grids."""

import numpy as np
import pytest

import arc_efe.data.synthetic as syn
from arc_efe.data.synthetic import FAMILIES, Family, generate_task
from arc_efe.data.synthetic._objects import components, enclosed, gravity
from arc_efe.data.synthetic.patterns import _fill_by_period
from arc_efe.data.tasks import grids_equal, make_grid

KINDS = {"objects", "patterns", "logic"}
MINE = sorted(name for name, f in FAMILIES.items() if f.kind in KINDS)
SEEDS = range(25)


def _valid(g) -> bool:
    return (isinstance(g, np.ndarray) and g.dtype == np.uint8 and g.ndim == 2
            and 1 <= g.shape[0] <= 30 and 1 <= g.shape[1] <= 30 and g.max() <= 9)


def _recording(family: Family):
    """The family, wrapped so that the last rule it made can be looked at."""
    made = []

    def make(rng):
        made.append(family.make(rng))
        return made[-1]
    return Family(family.name, family.kind, family.summary, make), made


def test_enough_families_of_these_kinds():
    assert len(MINE) >= 22
    assert {FAMILIES[n].kind for n in MINE} == KINDS
    for name in MINE:
        assert name == name.lower() and " " not in name
        assert FAMILIES[name].make.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("name", MINE)
def test_tasks_valid_consistent_and_reproducible(name):
    family = FAMILIES[name]
    for seed in SEEDS:
        wrapped, made = _recording(family)
        task = generate_task(wrapped, np.random.default_rng(seed), "t")
        assert 3 <= len(task.train) <= 5 and 1 <= len(task.test) <= 2
        assert task.source == f"synthetic/{name}"
        rule = made[-1]
        for pair in task.train + task.test:
            assert _valid(pair.input) and _valid(pair.output)
            before = pair.input.copy()
            assert grids_equal(rule.apply(pair.input), pair.output)
            assert grids_equal(pair.input, before), "apply changed its input"
        again = generate_task(family, np.random.default_rng(seed), "t")
        for a, b in zip(task.train + task.test, again.train + again.test, strict=True):
            assert grids_equal(a.input, b.input) and grids_equal(a.output, b.output)


@pytest.mark.parametrize("name", MINE)
def test_seeds_give_different_tasks(name):
    firsts = {generate_task(FAMILIES[name], np.random.default_rng(s), "t").train[0].input.tobytes()
              for s in range(6)}
    assert len(firsts) > 1


def test_connected_components():
    g = make_grid([[1, 1, 0, 2],
                   [0, 1, 0, 2],
                   [3, 0, 1, 0],
                   [3, 3, 0, 0]])
    objs = components(g)
    assert [(o.colour, o.size) for o in objs] == [(1, 3), (2, 2), (3, 3), (1, 1)]  # diagonal is not a link
    assert objs[0].bbox == (0, 0, 2, 2) and not objs[0].is_rectangle() and objs[1].is_rectangle()
    assert objs[2].touches_border(4, 4) and not objs[3].touches_border(4, 4)
    assert grids_equal(objs[0].crop(g), make_grid([[1, 1], [0, 1]]))
    mixed = make_grid([[1, 2, 0], [0, 2, 0], [0, 0, 5]])
    assert len(components(mixed)) == 3 and len(components(mixed, by_colour=False)) == 2
    assert [o.size for o in components(make_grid([[4, 4], [4, 0]]), background=4)] == [1]


def test_gravity_cells_and_objects():
    g = make_grid([[1, 0, 2],
                   [0, 0, 0],
                   [3, 0, 0],
                   [0, 0, 4]])
    assert grids_equal(gravity(g, "down", False), make_grid([[0, 0, 0], [0, 0, 0], [1, 0, 2], [3, 0, 4]]))
    assert grids_equal(gravity(g, "up", False), make_grid([[1, 0, 2], [3, 0, 4], [0, 0, 0], [0, 0, 0]]))
    assert grids_equal(gravity(g, "right", False), make_grid([[0, 1, 2], [0, 0, 0], [0, 0, 3], [0, 0, 4]]))
    assert grids_equal(gravity(g, "left", False), make_grid([[1, 2, 0], [0, 0, 0], [3, 0, 0], [4, 0, 0]]))
    # a rigid hook whose overhang rests on a bar below it: the bar falls first, the hook follows
    h = make_grid([[5, 5, 5, 5],
                   [5, 0, 0, 0],
                   [5, 0, 7, 7],
                   [5, 0, 0, 0],
                   [5, 0, 0, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]])
    assert grids_equal(gravity(h, "down", True), make_grid([[0, 0, 0, 0],
                                                           [0, 0, 0, 0],
                                                           [5, 5, 5, 5],
                                                           [5, 0, 0, 0],
                                                           [5, 0, 0, 0],
                                                           [5, 0, 0, 0],
                                                           [5, 0, 7, 7]]))


def test_gravity_objects_keep_shape():
    g = make_grid([[0, 6, 6, 0],
                   [0, 0, 6, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]])
    assert grids_equal(gravity(g, "down", True), make_grid([[0, 0, 0, 0], [0, 0, 0, 0], [0, 6, 6, 0], [0, 0, 6, 0]]))
    assert grids_equal(gravity(g, "right", True), make_grid([[0, 0, 6, 6], [0, 0, 0, 6], [0, 0, 0, 0], [0, 0, 0, 0]]))


def test_fill_enclosed_fills_only_holes():
    g = make_grid([[2, 2, 2, 0, 0, 0],
                   [2, 0, 2, 0, 3, 3],
                   [2, 2, 2, 0, 3, 0],
                   [0, 0, 0, 0, 3, 3]])  # the 3-shape is open to the right
    hole = np.zeros(g.shape, dtype=bool)
    hole[1, 1] = True
    assert np.array_equal(enclosed(g), hole)
    rule = FAMILIES["fill_enclosed"].make(np.random.default_rng(0))
    out = rule.apply(g)
    changed = out != g
    assert np.array_equal(changed, hole) and out[1, 1] != 0


def test_xor_of_halves_on_hand_made_grid():
    rng = np.random.default_rng(1)
    rule = FAMILIES["halves_xor"].make(rng)
    sample = rule.sample_input(rng)
    vertical = sample.shape[1] % 2 == 1 and len(np.unique(sample[:, sample.shape[1] // 2])) == 1
    layout = sample if vertical else sample.T
    divider = int(layout[0, layout.shape[1] // 2])
    a = make_grid([[1, 1, 0], [0, 1, 0]])
    b = make_grid([[1, 0, 0], [1, 1, 0]])
    x = np.hstack([a, np.full((2, 1), divider, dtype=np.uint8), b])
    out = rule.apply(x if vertical else np.ascontiguousarray(x.T))
    out = out if vertical else out.T
    assert out.shape == (2, 3)
    assert np.array_equal(out != 0, np.array([[0, 1, 0], [1, 0, 0]], dtype=bool))
    assert len(np.unique(out[out != 0])) == 1


def test_count_objects_on_hand_made_grid():
    rule = FAMILIES["count_objects"].make(np.random.default_rng(4))
    g = make_grid([[1, 0, 0, 2],
                   [1, 0, 2, 0],  # diagonal 2s: two objects
                   [0, 0, 0, 0],
                   [3, 3, 0, 4]])
    out = rule.apply(g)
    assert out.shape == (1, 5) and len(np.unique(out)) == 1 and out[0, 0] != 0


def test_extract_and_hollow_on_hand_made_grid():
    g = make_grid([[3, 3, 3, 0, 0],
                   [3, 3, 3, 0, 5],
                   [3, 3, 3, 0, 5],
                   [0, 0, 0, 0, 0],
                   [7, 0, 0, 0, 0]])
    rng = np.random.default_rng(0)
    assert grids_equal(FAMILIES["extract_largest_object"].make(rng).apply(g), np.full((3, 3), 3, np.uint8))
    assert grids_equal(FAMILIES["extract_smallest_object"].make(rng).apply(g), make_grid([[7]]))
    hollow = FAMILIES["hollow_rectangles"].make(rng).apply(g)
    expect = g.copy()
    expect[1, 1] = 0
    assert grids_equal(hollow, expect)


def test_fill_by_period_restores_masked_tiles():
    tile = make_grid([[1, 2, 3], [2, 1, 3]])
    full = np.tile(tile, (3, 3))
    x = full.copy()
    x[1:3, 2:5] = 9
    assert grids_equal(_fill_by_period(x, 9), full)


def test_package_lists_the_families():
    assert set(MINE) <= set(syn.FAMILIES)
