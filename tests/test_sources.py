"""Loading every kind of source, and one test per kind of bad input."""

import json

import numpy as np
import pytest

from arc_efe.errors import DataError, SourceError
from arc_efe.sources import EMBEDDED, load_tasks

from conftest import small_task


# --- sources ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,n_tasks,n_test", [
    ("arc-agi-1/training", 400, 416),
    ("arc-agi-1/evaluation", 400, 419),
    ("arc-agi-2/training", 1000, 1076),
    ("arc-agi-2/evaluation", 120, 167),
])
def test_embedded_sets(name, n_tasks, n_test):
    res = load_tasks(name)
    assert len(res.tasks) == n_tasks
    assert sum(len(t.test) for t in res.tasks) == n_test
    assert all(t.has_answers for t in res.tasks)
    g = res.tasks[0].train[0].input
    assert g.dtype == np.uint8 and g.ndim == 2


def test_task_dict_with_inline_outputs(write_json):
    path = write_json("training.json", {"a1": small_task(0), "b2": small_task(1, n_test=2)})
    res = load_tasks(path)
    assert [t.id for t in res.tasks] == ["a1", "b2"]
    assert len(res.tasks[1].test) == 2 and res.tasks[1].has_answers
    assert res.tasks[0].train[0].output.tolist() == [[0, 2, 0], [2, 0, 2]]


def test_challenges_file_finds_solutions_beside_it(write_json):
    ch = {"a1": small_task(0, with_answers=False), "b2": small_task(1, n_test=2, with_answers=False)}
    path = write_json("x_challenges.json", ch)
    write_json("x_solutions.json", {"a1": [[[7]]], "b2": [[[1, 2]], [[3]]]})
    res = load_tasks(path)
    tasks = res.by_id()
    assert tasks["a1"].test[0].output.tolist() == [[7]]
    assert [p.output.tolist() for p in tasks["b2"].test] == [[[1, 2]], [[3]]]


def test_challenges_without_solutions_has_no_answers(write_json):
    path = write_json("y_challenges.json", {"a1": small_task(0, with_answers=False)})
    res = load_tasks(path)
    assert not res.tasks[0].has_answers and res.tasks[0].test[0].output is None


def test_explicit_solutions_file(write_json):
    path = write_json("tasks.json", {"a1": small_task(0, with_answers=False)})
    sol = write_json("answers.json", {"a1": [[[5, 5]]]})
    assert load_tasks(path, solutions=sol).tasks[0].test[0].output.tolist() == [[5, 5]]


def test_single_task_file(write_json):
    path = write_json("007bbfb7.json", small_task(0))
    res = load_tasks(path)
    assert [t.id for t in res.tasks] == ["007bbfb7"]


def test_folder_of_task_files(write_json, tmp_path):
    write_json("dir/t1.json", small_task(0))
    write_json("dir/t2.json", small_task(1))
    (tmp_path / "dir" / "notes.txt").write_text("not a task")
    res = load_tasks(tmp_path / "dir")
    assert sorted(t.id for t in res.tasks) == ["t1", "t2"]


def test_unknown_source_lists_what_is_accepted():
    with pytest.raises(SourceError) as e:
        load_tasks("arc-agi-3/training")
    msg = str(e.value)
    assert "arc-agi-3/training not found" in msg
    for name in EMBEDDED:
        assert name in msg


# --- bad input: one test per kind, each naming file, task and field --------------------

def _error(write_json, task, name="bad.json"):
    path = write_json(name, {"t1": small_task(0), "badtask": task})
    with pytest.raises(DataError) as e:
        load_tasks(path)
    return str(e.value), str(path)


def _with(**changes):
    task = small_task(0)
    for key, fn in changes.items():
        fn(task)
    return task


def test_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"a": {"train": [}')
    with pytest.raises(DataError, match=r"broken.json: not valid JSON: .* line 1 column"):
        load_tasks(path)


def test_wrong_top_level_type(write_json):
    path = write_json("list.json", [1, 2, 3])
    with pytest.raises(DataError, match=r"list.json: top level is a list"):
        load_tasks(path)


def test_task_not_an_object(write_json):
    msg, path = _error(write_json, [1, 2])
    assert msg == f"{path}: task badtask is a list, not an object with 'train' and 'test'"


def test_missing_train_key(write_json):
    t = small_task(0)
    del t["train"]
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask has no 'train' key"


def test_missing_test_key(write_json):
    t = small_task(0)
    del t["test"]
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask has no 'test' key"


def test_no_train_pairs(write_json):
    t = small_task(0)
    t["train"] = []
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask, 'train' is empty: at least one pair is needed"


def test_missing_output_in_train(write_json):
    t = small_task(0)
    del t["train"][1]["output"]
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask, train[1] has no 'output' key"


def test_missing_input(write_json):
    t = small_task(0)
    del t["test"][0]["input"]
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask, test[0] has no 'input' key"


def test_ragged_rows(write_json):
    t = small_task(0)
    t["train"][2]["output"] = [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3, 4]]
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask, train[2].output row 3 has 4 cells, row 0 has 3"


def test_colour_out_of_range(write_json):
    t = small_task(0)
    t["train"][0]["input"][1][2] = 10
    msg, path = _error(write_json, t)
    assert msg == f"{path}: task badtask, train[0].input row 1 col 2 is colour 10, colours are 0-9"


def test_negative_colour(write_json):
    t = small_task(0)
    t["test"][0]["input"][0][0] = -1
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, test[0].input row 0 col 0 is colour -1, colours are 0-9")


@pytest.mark.parametrize("cell", [1.5, "3", True, None])
def test_non_integer_cell(write_json, cell):
    t = small_task(0)
    t["train"][1]["input"][0][1] = cell
    msg, _ = _error(write_json, t)
    assert msg.endswith(f"task badtask, train[1].input row 0 col 1 is {json.dumps(cell)}, not an integer colour")


def test_grid_too_large(write_json):
    t = small_task(0)
    t["train"][0]["output"] = [[0] * 30 for _ in range(31)]
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, train[0].output has 31 rows, at most 30 allowed")


def test_row_too_wide(write_json):
    t = small_task(0)
    t["train"][0]["output"] = [[0] * 31]
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, train[0].output row 0 has 31 cells, at most 30 allowed")


def test_empty_grid(write_json):
    t = small_task(0)
    t["train"][0]["input"] = []
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, train[0].input has no rows")


def test_empty_row(write_json):
    t = small_task(0)
    t["train"][0]["input"] = [[]]
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, train[0].input row 0 is empty")


def test_grid_not_a_list(write_json):
    t = small_task(0)
    t["train"][0]["output"] = None
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, train[0].output is null, not a list of rows")


def test_row_not_a_list(write_json):
    t = small_task(0)
    t["train"][0]["output"] = [1, 2, 3]
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, train[0].output row 0 is a number, not a list of cells")


def test_too_many_pairs(write_json):
    t = small_task(0, n_train=65)
    msg, _ = _error(write_json, t)
    assert msg.endswith("task badtask, 'train' has 65 pairs, at most 64 allowed")


def test_deep_nesting(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(DataError, match="deep.json: nested deeper than 32 levels at line 1 column 33"):
        load_tasks(path)


def test_solutions_count_mismatch(write_json):
    path = write_json("z_challenges.json", {"a1": small_task(0, with_answers=False)})
    sol = write_json("z_solutions.json", {"a1": [[[1]], [[2]]]})
    with pytest.raises(DataError) as e:
        load_tasks(path)
    assert str(e.value) == f"{sol}: task a1 has 2 solutions, the task has 1 test inputs"


def test_solutions_missing_task(write_json):
    path = write_json("w_challenges.json", {"a1": small_task(0, with_answers=False)})
    sol = write_json("w_solutions.json", {"other": [[[1]]]})
    with pytest.raises(DataError, match=f"{sol}: task a1 has no solutions"):
        load_tasks(path)


def test_duplicate_task_ids_across_folder_files(write_json, tmp_path):
    write_json("d/a.json", {"same": small_task(0)})
    write_json("d/b.json", {"same": small_task(1)})
    with pytest.raises(DataError, match=r"b.json: task same is also in .*a.json"):
        load_tasks(tmp_path / "d")


# --- skip-invalid: nothing valid is lost ------------------------------------------------

def test_skip_invalid_keeps_every_valid_task(write_json):
    bad1 = small_task(0)
    bad1["train"][0]["input"][0][0] = 11
    bad2 = small_task(0)
    del bad2["test"]
    path = write_json("mixed.json", {"ok1": small_task(0), "bad1": bad1, "ok2": small_task(1),
                                     "bad2": bad2, "ok3": small_task(2)})
    res = load_tasks(path, skip_invalid=True)
    assert [t.id for t in res.tasks] == ["ok1", "ok2", "ok3"]
    assert [s.task_id for s in res.skipped] == ["bad1", "bad2"]
    assert "colour 11" in res.skipped[0].reason and "no 'test' key" in res.skipped[1].reason


def test_skip_invalid_in_folder_skips_unreadable_file(write_json, tmp_path):
    write_json("f/good.json", small_task(0))
    (tmp_path / "f" / "bad.json").write_text("not json")
    res = load_tasks(tmp_path / "f", skip_invalid=True)
    assert [t.id for t in res.tasks] == ["good"]
    assert res.skipped[0].task_id == "bad" and "not valid JSON" in res.skipped[0].reason


def test_roundtrip_to_json(write_json):
    raw = {"a1": small_task(3, n_test=2)}
    path = write_json("rt.json", raw)
    task = load_tasks(path).tasks[0]
    assert json.loads(json.dumps(task.to_json())) == raw["a1"]
