"""Loading every kind of source (the malformed ones are in test_bad_input.py)."""

import json

import numpy as np
import pytest

from arc_efe.data.sources import DEV_SIZE, EMBEDDED, load_tasks
from arc_efe.errors import SourceError

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


def test_roundtrip_to_json(write_json):
    raw = {"a1": small_task(3, n_test=2)}
    path = write_json("rt.json", raw)
    task = load_tasks(path).tasks[0]
    assert json.loads(json.dumps(task.to_json())) == raw["a1"]


# --- named splits: the development split leaks nothing -------------------------------------

def test_development_split_shares_no_task_with_the_evaluation_sets_or_training_splits():
    ids = {name: {t.id for t in load_tasks(name).tasks}
           for name in ("arc-agi-1/dev", "arc-agi-1/training-no-dev", "arc-agi-2/training-extra",
                        "arc-agi-1/training", "arc-agi-1/evaluation", "arc-agi-2/evaluation")}
    dev, fit, extra = ids["arc-agi-1/dev"], ids["arc-agi-1/training-no-dev"], ids["arc-agi-2/training-extra"]
    evaluation = ids["arc-agi-1/evaluation"] | ids["arc-agi-2/evaluation"]
    assert len(dev) == DEV_SIZE and dev <= ids["arc-agi-1/training"]
    assert not dev & evaluation and not dev & fit and not dev & extra
    assert dev | fit == ids["arc-agi-1/training"]
    assert extra and not extra & evaluation and not extra & ids["arc-agi-1/training"]
    # fixed by the ids alone: loading again gives the same split
    assert {t.id for t in load_tasks("arc-agi-1/dev").tasks} == dev
