"""Geometry, colour and noise families of arc_efe.data.synthetic."""

import numpy as np
import pytest

from arc_efe.data.synthetic import FAMILIES, Family, generate_task

KINDS = {"geometry", "colour", "noise"}
MINE = sorted(name for name, f in FAMILIES.items() if f.kind in KINDS)
SEEDS = range(25)


def valid(g) -> bool:
    return (isinstance(g, np.ndarray) and g.ndim == 2 and g.dtype == np.uint8
            and 1 <= g.shape[0] <= 30 and 1 <= g.shape[1] <= 30 and int(g.max()) <= 9)


def grid(rows) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def rule_of(name: str, seed: int = 0):
    return FAMILIES[name].make(np.random.default_rng(seed))


def test_enough_families_and_names():
    assert len(MINE) >= 22
    for name in MINE:
        f = FAMILIES[name]
        assert name == name.lower() and " " not in name
        assert f.make.__doc__ and f.summary
    assert {FAMILIES[n].kind for n in MINE} == KINDS


@pytest.mark.parametrize("name", MINE)
def test_tasks_valid_consistent_deterministic(name):
    family = FAMILIES[name]
    for seed in SEEDS:
        made = []

        def recording_make(rng, make=family.make):
            made.append(make(rng))
            return made[-1]

        spy = Family(family.name, family.kind, family.summary, recording_make)
        task = generate_task(spy, np.random.default_rng(seed), "t")
        assert 3 <= len(task.train) <= 5 and 1 <= len(task.test) <= 2
        rule = made[-1]  # the rule of the accepted draw
        for pair in task.train + task.test:
            assert valid(pair.input) and valid(pair.output)
            assert np.array_equal(rule.apply(pair.input), pair.output)
        assert any(p.input.shape != p.output.shape or not np.array_equal(p.input, p.output)
                   for p in task.train + task.test)

        again = generate_task(family, np.random.default_rng(seed), "t")
        for a, b in zip(task.train + task.test, again.train + again.test, strict=True):
            assert np.array_equal(a.input, b.input) and np.array_equal(a.output, b.output)


@pytest.mark.parametrize("name", MINE)
def test_apply_is_pure(name):
    for seed in range(10):
        rng = np.random.default_rng(1000 + seed)
        rule = FAMILIES[name].make(rng)
        for _ in range(3):
            x = rule.sample_input(rng)
            assert valid(x)
            before = x.copy()
            y1, y2 = rule.apply(x), rule.apply(x)
            assert np.array_equal(x, before), "apply changed its input"
            assert valid(y1) and np.array_equal(y1, y2)
            y1[...] = 0  # an output is not a view of the input
            assert np.array_equal(x, before)


@pytest.mark.parametrize("name", MINE)
def test_demonstrations_vary(name):
    """Inputs differ in size or content across the demonstrations of a task."""
    shapes = set()
    for seed in range(5):
        task = generate_task(FAMILIES[name], np.random.default_rng(seed), "t")
        shapes |= {p.input.shape for p in task.train}
    assert len(shapes) >= 3


# --- specific rules on hand-made grids ---------------------------------------------------------

SQUARE = grid([[1, 2], [3, 4]])


@pytest.mark.parametrize("name, expected", [
    ("flip_lr", [[2, 1], [4, 3]]),
    ("flip_ud", [[3, 4], [1, 2]]),
    ("rotate_90", [[3, 1], [4, 2]]),
    ("rotate_180", [[4, 3], [2, 1]]),
    ("rotate_270", [[2, 4], [1, 3]]),
    ("transpose", [[1, 3], [2, 4]]),
    ("anti_transpose", [[4, 2], [3, 1]]),
])
def test_fixed_transforms(name, expected):
    assert rule_of(name).apply(SQUARE).tolist() == expected


def test_rotate_90_non_square():
    assert rule_of("rotate_90").apply(grid([[1, 2, 3]])).tolist() == [[1], [2], [3]]


def _seed_where(name, predicate):
    for seed in range(200):
        rule = rule_of(name, seed)
        if predicate(rule):
            return rule
    raise AssertionError(f"no seed of {name} satisfies the predicate")


def test_scale_up_by_two():
    rule = _seed_where("scale_up", lambda r: r.apply(grid([[1]])).shape == (2, 2))
    assert rule.apply(SQUARE).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_scale_down_inverts_scale_up():
    rule = _seed_where("scale_down", lambda r: r.apply(grid([[5, 5], [5, 5]])).shape == (1, 1))
    assert rule.apply(np.kron(SQUARE, np.ones((2, 2), dtype=np.uint8))).tolist() == SQUARE.tolist()


def test_tile_and_tile_mirror_shapes():
    for seed in range(20):
        out = rule_of("tile", seed).apply(SQUARE)
        n, m = out.shape[0] // 2, out.shape[1] // 2
        assert (n, m) != (1, 1) and np.array_equal(out, np.tile(SQUARE, (n, m)))
        mirrored = rule_of("tile_mirror", seed).apply(SQUARE)
        assert np.array_equal(mirrored[:2, :2], SQUARE)
        assert mirrored.shape[0] > 2 or mirrored.shape[1] > 2


def test_shift_wrap_and_clip():
    dot = np.zeros((7, 7), dtype=np.uint8)
    dot[3, 3] = 5
    for seed in range(10):
        wrap = rule_of("shift_wrap", seed)
        (r,), (c,) = np.nonzero(wrap.apply(dot))
        dr, dc = r - 3, c - 3
        assert (dr, dc) != (0, 0)
        g = np.arange(49, dtype=np.uint8).reshape(7, 7) % 10
        assert np.array_equal(wrap.apply(g), np.roll(g, (dr, dc), axis=(0, 1)))
        clip = rule_of("shift_clip", seed)
        corner = np.zeros((7, 7), dtype=np.uint8)
        corner[0, 0] = corner[0, 6] = corner[6, 0] = corner[6, 6] = 4
        assert 1 <= int((clip.apply(corner) != 0).sum()) < 4  # some corners fall off, never all


def test_crop_object():
    g = np.zeros((6, 7), dtype=np.uint8)
    g[2:4, 3:6] = [[1, 0, 2], [1, 1, 1]]
    assert rule_of("crop_object").apply(g).tolist() == [[1, 0, 2], [1, 1, 1]]


def test_crop_colour_object():
    for seed in range(5):
        rule = rule_of("crop_colour_object", seed)
        outs = {}
        for colour in range(1, 10):
            g = np.zeros((8, 8), dtype=np.uint8)
            g[1:3, 1:4] = colour
            g[5:7, 5] = 9 if colour != 9 else 8
            g[1, 1] = 0
            outs[colour] = rule.apply(g)
        hits = [c for c, out in outs.items() if out.shape == (2, 3)]
        assert len(hits) == 1  # exactly one colour is the target
        assert outs[hits[0]].tolist() == [[0, hits[0], hits[0]], [hits[0]] * 3]


def test_majority_and_minority_colour():
    g = grid([[1, 1, 2], [0, 3, 1], [0, 3, 0]])
    assert rule_of("majority_colour").apply(g).tolist() == [[1]]
    assert rule_of("minority_colour").apply(g).tolist() == [[2]]


def test_colour_mappings():
    row = np.arange(10, dtype=np.uint8)[None, :]
    for seed in range(20):
        swapped = rule_of("swap_colours", seed).apply(row)[0]
        changed = [c for c in range(10) if swapped[c] != c]
        assert len(changed) == 2 and 0 not in changed
        a, b = changed
        assert swapped[a] == b and swapped[b] == a

        permuted = rule_of("colour_permutation", seed).apply(row)[0]
        moved = [c for c in range(10) if permuted[c] != c]
        assert 3 <= len(moved) <= 4 and 0 not in moved
        assert sorted(permuted[moved]) == moved  # a permutation of the moved colours

        filled = rule_of("fill_background", seed).apply(row)[0]
        assert filled[0] != 0 and np.array_equal(filled[1:], row[0, 1:])


def test_recolour_by_half():
    for seed in range(10):
        rule = rule_of("recolour_by_half", seed)
        g = grid([[5, 0, 5, 5], [0, 5, 0, 5], [5, 0, 5, 5], [0, 5, 0, 5]])
        out = rule.apply(g)

        def split(first, second):
            a, b = (set(half[half != 0].tolist()) for half in (first, second))
            return len(a) == 1 and len(b) == 1 and a != b

        assert split(out[:, :2], out[:, 2:]) != split(out[:2], out[2:])  # one direction, not both
        assert np.array_equal(out == 0, g == 0)  # the background stays


def test_recolour_largest_and_by_size():
    for seed in range(10):
        rule = rule_of("recolour_largest", seed)
        source = int(rule.sample_input(np.random.default_rng(seed)).max())
        g = np.zeros((6, 6), dtype=np.uint8)
        g[0, 0] = source
        g[3:5, 2:5] = source
        g[0, 4:6] = source
        out = rule.apply(g)
        assert out[0, 0] == source and out[0, 4] == source
        assert len(set(out[3:5, 2:5].ravel().tolist())) == 1 and out[3, 2] != source

        by_size = rule_of("recolour_by_size", seed)
        source = int(by_size.sample_input(np.random.default_rng(seed)).max())
        g = np.zeros((5, 5), dtype=np.uint8)
        g[0, 0] = g[4, 4] = source
        g[2, 1:3] = source
        out = by_size.apply(g)
        assert out[0, 0] == out[4, 4] != source  # same size, same new colour
        assert out[2, 1] == out[2, 2] not in (source, out[0, 0])


def test_denoise_isolated():
    for seed in range(10):
        rule = rule_of("denoise_isolated", seed)
        erased = []
        for colour in range(1, 10):
            g = np.zeros((5, 5), dtype=np.uint8)
            g[2, 2] = colour
            if not rule.apply(g).any():
                erased.append(colour)
        assert len(erased) == 1
        noise = erased[0]
        g = np.zeros((6, 6), dtype=np.uint8)
        g[1:3, 1:3] = noise  # a solid block of the noise colour stays
        g[5, 5] = noise
        expected = g.copy()
        expected[5, 5] = 0
        assert np.array_equal(rule.apply(g), expected)


def test_denoise_stripes_restores_pattern():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        rule = rule_of("denoise_stripes", seed)
        x = rule.sample_input(rng)
        y = rule.apply(x)
        assert not np.array_equal(x, y)
        assert np.array_equal(rule.apply(y), y)  # a clean pattern has nothing to remove
        # the output is constant along rows, columns or anti-diagonals
        assert ((y[:, 1:] == y[:, :-1]).all() or (y[1:] == y[:-1]).all()
                or (y[1:, :-1] == y[:-1, 1:]).all())
