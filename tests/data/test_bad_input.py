"""A corpus of malformed input files, run through the real command line.

Each kind must give exit status 2 and exactly one line on standard error that names the file
and the place (task, field, row, column, or line and column of the file). With --skip-invalid
a bad task costs only itself: the valid tasks of the same file are all loaded, and a file that
cannot be read as a whole costs only that file's tasks in a folder.
"""

import json

import pytest

from arc_efe.cli import main
from arc_efe.data.jsonfile import MAX_FILE_BYTES
from arc_efe.data.sources import Skipped, load_tasks
from arc_efe.data.tasks import MAX_TEST_PAIRS, MAX_TRAIN_PAIRS

from conftest import small_task

GOOD = {"good1": small_task(1), "good2": small_task(2, n_test=2)}
DROP = object()


def changed(path: tuple, value=DROP) -> str:
    """JSON text of a valid task with the item at `path` replaced by `value` (or removed)."""
    task = small_task(0)
    parent = task
    for key in path[:-1]:
        parent = parent[key]
    if value is DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(task)


def grid(rows: int, cols: int) -> list:
    return [[0] * cols for _ in range(rows)]


T = small_task(0)
PAIR = json.dumps(T["train"][0]["input"])

# kind, JSON text of the task "bad" (or of several members, for a repeated id), and the
# message after "<file>: ".
TASK_KINDS = [
    ("task not an object", "[1, 2]", "task bad is a list, not an object with 'train' and 'test'"),
    ("task is null", "null", "task bad is null, not an object with 'train' and 'test'"),
    ("missing train", changed(("train",)), "task bad has no 'train' key"),
    ("missing test", changed(("test",)), "task bad has no 'test' key"),
    ("train not a list", changed(("train",), {"input": [[1]]}),
     "task bad, 'train' is an object, not a list of pairs"),
    ("no train pairs", changed(("train",), []), "task bad, 'train' is empty: at least one pair is needed"),
    ("too many pairs", json.dumps(small_task(0, n_train=MAX_TRAIN_PAIRS + 1)),
     "task bad, 'train' has 65 pairs, at most 64 allowed"),
    ("too many test pairs", json.dumps(small_task(0, n_test=MAX_TEST_PAIRS + 1)),
     "task bad, 'test' has 17 pairs, at most 16 allowed"),
    ("pair not an object", changed(("train", 0), [[1]]),
     "task bad, train[0] is a list, not an object with 'input' and 'output'"),
    ("pair missing input", changed(("test", 0, "input")), "task bad, test[0] has no 'input' key"),
    ("train pair missing output", changed(("train", 1, "output")), "task bad, train[1] has no 'output' key"),
    ("output null", changed(("train", 0, "output"), None), "task bad, train[0].output is null, not a list of rows"),
    ("test output null", changed(("test", 0, "output"), None), "task bad, test[0].output is null, not a list of rows"),
    ("grid a string", changed(("train", 0, "input"), "010"), "task bad, train[0].input is a string, not a list of rows"),
    ("empty grid", changed(("train", 0, "input"), []), "task bad, train[0].input has no rows"),
    ("0x0 grid", changed(("train", 0, "input"), [[]]), "task bad, train[0].input row 0 is empty"),
    ("row not a list", changed(("train", 0, "output"), [1, 2, 3]),
     "task bad, train[0].output row 0 is a number, not a list of cells"),
    ("rows as strings", changed(("train", 0, "output"), ["010", "101"]),
     "task bad, train[0].output row 0 is a string, not a list of cells"),
    ("ragged rows", changed(("train", 2, "output"), [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3, 4]]),
     "task bad, train[2].output row 3 has 4 cells, row 0 has 3"),
    ("31x31 grid", changed(("train", 0, "output"), grid(31, 31)),
     "task bad, train[0].output has 31 rows, at most 30 allowed"),
    ("row of 31 cells", changed(("train", 0, "output"), grid(1, 31)),
     "task bad, train[0].output row 0 has 31 cells, at most 30 allowed"),
    ("3-D grid", changed(("test", 0, "input"), [[[1]]]),
     "task bad, test[0].input row 0 col 0 is [1], not an integer colour"),
    ("colour 10", changed(("train", 0, "input", 1, 2), 10),
     "task bad, train[0].input row 1 col 2 is colour 10, colours are 0-9"),
    ("negative colour", changed(("test", 0, "input", 0, 0), -1),
     "task bad, test[0].input row 0 col 0 is colour -1, colours are 0-9"),
    ("huge colour", changed(("train", 1, "input", 0, 1), 10**60),
     "task bad, train[1].input row 0 col 1 is colour 1000000000000000000000000000000000000..., colours are 0-9"),
    ("float cell", changed(("train", 1, "input", 0, 1), 1.5),
     "task bad, train[1].input row 0 col 1 is 1.5, not an integer colour"),
    ("whole float cell", changed(("train", 1, "input", 0, 1), 2.0),
     "task bad, train[1].input row 0 col 1 is 2.0, not an integer colour"),
    ("string cell", changed(("train", 1, "input", 0, 1), "3"),
     'task bad, train[1].input row 0 col 1 is "3", not an integer colour'),
    ("long string cell", changed(("train", 1, "input", 0, 1), "x" * 100_000),
     'task bad, train[1].input row 0 col 1 is "' + "x" * 36 + '..., not an integer colour'),
    ("bool cell", changed(("train", 1, "input", 0, 1), True),
     "task bad, train[1].input row 0 col 1 is true, not an integer colour"),
    ("null cell", changed(("train", 1, "input", 0, 1), None),
     "task bad, train[1].input row 0 col 1 is null, not an integer colour"),
    ("NaN literal", changed(("train", 1, "input", 0, 1), float("nan")),
     "task bad, train[1].input row 0 col 1 is NaN, not an integer colour"),
    ("Infinity literal", changed(("test", 0, "output", 1, 0), float("inf")),
     "task bad, test[0].output row 1 col 0 is Infinity, not an integer colour"),
    ("key twice in a task", '{"train": %s, "train": %s, "test": %s}' % (
        json.dumps(T["train"]), json.dumps(T["train"]), json.dumps(T["test"])),
     "task bad has the key 'train' twice; keep one"),
    ("key twice in a pair", '{"train": [{"input": %s, "input": %s, "output": %s}], "test": %s}' % (
        PAIR, PAIR, PAIR, json.dumps(T["test"])),
     "task bad, train[0] has the key 'input' twice; keep one"),
    ("task id twice in one file", json.dumps(T) + ', "bad": ' + json.dumps(T),
     "task bad appears 2 times in the file; keep one and remove or rename the others"),
]


def _task_file(tmp_path, members: str):
    """good1, the bad task(s), good2 in one task-dictionary file."""
    path = tmp_path / "tasks.json"
    g1, g2 = json.dumps(GOOD["good1"]), json.dumps(GOOD["good2"])
    path.write_text(f'{{"good1": {g1}, "bad": {members}, "good2": {g2}}}')
    return path


def _one_error_line(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.err.endswith("\n"), captured.err[:500]
    return lines[0]


def _skipped_listed(capsys, argv, n_valid: int, reasons: list[str]) -> None:
    assert main([str(a) for a in argv] + ["--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert f": {n_valid} tasks valid" in captured.out
    assert f"skipped {len(reasons)} invalid tasks:" in captured.out
    for reason in reasons:
        assert f"    {reason}\n" in captured.out


@pytest.mark.parametrize("kind,members,message", TASK_KINDS, ids=[k[0] for k in TASK_KINDS])
def test_bad_task(tmp_path, capsys, kind, members, message):
    path = _task_file(tmp_path, members)
    assert _one_error_line(capsys, ["data", "validate", path]) == f"error: {path}: {message}"

    res = load_tasks(path, skip_invalid=True)
    assert [t.id for t in res.tasks] == ["good1", "good2"]
    assert res.skipped == [Skipped("bad", f"{path}: {message}")]
    _skipped_listed(capsys, ["data", "validate", path], 2, [f"{path}: {message}"])


# --- files that cannot be read as a whole -------------------------------------------------

def _sparse(path):
    """A file one byte over the limit, without writing hundreds of megabytes."""
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)


DEEP_TASK = json.dumps({"t": {"train": [{"input": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}},
                       indent=1)
TOP_LEVEL = ", expected an object: a task {\"train\": [...], \"test\": [...]} or {task_id: task, ...}"

# kind, the file's bytes (or a function writing it), message after "<file>: "
FILE_KINDS = [
    ("not JSON", b'{"a": {"train": [}', "not valid JSON: Expecting value at line 1 column 18"),
    ("empty file", b"", "not valid JSON: Expecting value at line 1 column 1"),
    ("cut off", b'{\n "t1": {"train": [{"input": [[1, 2',
     "not valid JSON: Expecting ',' delimiter at line 2 column 35"),
    ("single quotes", b"{'t1': {}}",
     "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ("extra data", b'{"t1": {}} {}', "not valid JSON: Extra data at line 1 column 12"),
    ("top level a list", b"[1, 2, 3]", "top level is a list" + TOP_LEVEL),
    ("top level null", b"null", "top level is null" + TOP_LEVEL),
    ("top level a number", b"42", "top level is a number" + TOP_LEVEL),
    ("not UTF-8", b'{"t\xff": {}}', "not UTF-8 text (byte 3)"),
    ("UTF-16", '{"t1": {}}'.encode("utf-16"), "not UTF-8 text (byte 0)"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels at line 1 column 33"),
    ("deep inside a task", DEEP_TASK.encode(), "nested deeper than 32 levels at line 33 column 33"),
    ("huge file", _sparse, f"file is {MAX_FILE_BYTES + 1:,} bytes, more than the 256 MiB accepted "
                           "for a JSON file"),
    ("5000-digit number", b'{"t": {"train": [{"input": [[' + b"7" * 5000 + b"]]}]}}",
     "a number has more than 4300 digits at line 1 column 30"),
]


def _write(path, content):
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    return path


def test_brackets_inside_strings_do_not_count(tmp_path):
    """Task ids full of brackets (one with an escaped quote) are valid, however many."""
    ids = ["[" * 40, '\\"{' * 40, "]" * 40 + "[" * 80]
    path = tmp_path / "odd_ids.json"
    path.write_text(json.dumps({tid: small_task(k) for k, tid in enumerate(ids)}, indent=1))
    assert [t.id for t in load_tasks(path).tasks] == ids


@pytest.mark.parametrize("kind,content,message", FILE_KINDS, ids=[k[0] for k in FILE_KINDS])
def test_bad_file(tmp_path, capsys, kind, content, message):
    bad = _write(tmp_path / "bad.json", content)
    assert _one_error_line(capsys, ["data", "validate", bad]) == f"error: {bad}: {message}"


@pytest.mark.parametrize("kind,content,message", FILE_KINDS, ids=[k[0] for k in FILE_KINDS])
def test_bad_file_in_folder(tmp_path, capsys, kind, content, message):
    folder = tmp_path / "tasks"
    folder.mkdir()
    bad = _write(folder / "bad.json", content)
    (folder / "good.json").write_text(json.dumps(GOOD))
    assert _one_error_line(capsys, ["data", "validate", folder]) == f"error: {bad}: {message}"

    res = load_tasks(folder, skip_invalid=True)
    assert [t.id for t in res.tasks] == ["good1", "good2"]
    assert res.skipped == [Skipped("bad", f"{bad}: {message}")]
    _skipped_listed(capsys, ["data", "validate", folder], 2, [f"{bad}: {message}"])


def test_task_id_in_two_files_of_a_folder(tmp_path, capsys, write_json):
    a = write_json("d/a.json", {"same": small_task(0), "good1": GOOD["good1"]})
    b = write_json("d/b.json", {"same": small_task(1), "good2": GOOD["good2"]})
    message = f"{b}: task same is also in {a}"
    assert _one_error_line(capsys, ["data", "validate", a.parent]) == f"error: {message}"
    res = load_tasks(a.parent, skip_invalid=True)
    assert sorted(t.id for t in res.tasks) == ["good1", "good2", "same"]  # the first one is kept
    assert res.skipped == [Skipped("same", message)]


# --- solutions files --------------------------------------------------------------------

ANSWERS = {tid: [p["output"] for p in t["test"]] for tid, t in GOOD.items()}

# kind, the solutions of task "bad" (DROP: none), message after "<solutions file>: "
SOLUTION_KINDS = [
    ("no solutions for a task", DROP, "task bad has no solutions"),
    ("solution count mismatch", [[[1]], [[2]]], "task bad has 2 solutions, the task has 1 test inputs"),
    ("solutions not a list", {"0": [[1]]}, "task bad is not a list of output grids"),
    ("solution grid colour 12", [[[12]]], "task bad, solution[0] row 0 col 0 is colour 12, colours are 0-9"),
    ("solution grid ragged", [[[1, 2], [3]]], "task bad, solution[0] row 1 has 1 cells, row 0 has 2"),
]


def _challenges(tmp_path):
    """good1, bad (one test input), good2 without their answers, as Kaggle ships them."""
    def blind(task):
        return {**task, "test": [{"input": p["input"]} for p in task["test"]]}

    tasks = {"good1": blind(GOOD["good1"]), "bad": blind(small_task(0)), "good2": blind(GOOD["good2"])}
    path = tmp_path / "x_challenges.json"
    path.write_text(json.dumps(tasks))
    return path


@pytest.mark.parametrize("kind,solution,message", SOLUTION_KINDS, ids=[k[0] for k in SOLUTION_KINDS])
def test_bad_solutions(tmp_path, capsys, kind, solution, message):
    challenges = _challenges(tmp_path)
    sol = tmp_path / "x_solutions.json"
    sol.write_text(json.dumps({**ANSWERS, **({} if solution is DROP else {"bad": solution})}))
    assert _one_error_line(capsys, ["data", "validate", challenges]) == f"error: {sol}: {message}"

    res = load_tasks(challenges, skip_invalid=True)
    assert [t.id for t in res.tasks] == ["good1", "good2"] and all(t.has_answers for t in res.tasks)
    assert res.skipped == [Skipped("bad", f"{sol}: {message}")]


@pytest.mark.parametrize("content,message", [
    (b"{", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b"[[[1]]]", 'top level is a list, expected {task_id: [output grid, ...]}'),
    (b'{"good1": [[[1]]], "good1": [[[2]]]}',
     "the key 'good1' appears twice in the top-level object (a JSON reader keeps only the last "
     "value); remove or rename one"),
], ids=["not JSON", "top level a list", "task id twice"])
def test_unreadable_solutions_file(tmp_path, capsys, content, message):
    """The answers of the whole set: with or without --skip-invalid, nothing is scored from it."""
    challenges = _challenges(tmp_path)
    sol = _write(tmp_path / "x_solutions.json", content)
    for skip in ([], ["--skip-invalid"]):
        line = _one_error_line(capsys, ["data", "validate", challenges, *skip])
        assert line == f"error: {sol}: {message}"


# --- submissions --------------------------------------------------------------------------

@pytest.mark.parametrize("content,message", [
    (b"not json", "not valid JSON: Expecting value at line 1 column 1"),
    (b'{"good1": [{"attempt_1": [[1]]}]', "not valid JSON: Expecting ',' delimiter at line 1 column 33"),
    (b'[{"attempt_1": [[1]]}]', 'top level is a list, expected {task_id: [{"attempt_1": grid, '
                               '"attempt_2": grid}, ...]}'),
    (b'{"good1": [{"attempt_1": ' + b"[" * 40 + b"]" * 40 + b"}]}",
     "nested deeper than 32 levels at line 1 column 55"),
    (b'{"good1": [], "good1": []}', "the key 'good1' appears twice in the top-level object (a JSON "
                                    "reader keeps only the last value); remove or rename one"),
    (b'{"good2": [{"attempt_1": [[1]], "attempt_1": [[2]]}]}',
     "the key 'attempt_1' appears twice in the object at good2[0] (a JSON reader keeps only the "
     "last value); remove or rename one"),
], ids=["not JSON", "cut off", "top level a list", "deep nesting", "task id twice", "attempt twice"])
def test_bad_submission(tmp_path, capsys, write_json, content, message):
    data = write_json("tasks.json", GOOD)
    sub = _write(tmp_path / "submission.json", content)
    assert _one_error_line(capsys, ["score", sub, "--data", data]) == f"error: {sub}: {message}"
    assert _one_error_line(capsys, ["merge", tmp_path / "merged.json", sub]) == f"error: {sub}: {message}"


# --- a run's config.json --------------------------------------------------------------------

@pytest.mark.parametrize("config,message", [
    ({"epochs": "five"}, "'epochs' is \"five\", expected a whole number"),
    ({"epochs": 2.5}, "'epochs' is 2.5, expected a whole number"),
    ({"weights": [1, 2]}, "'weights' is [1, 2], expected an object of numbers {name: number}"),
    ({"agent_lr": None}, "'agent_lr' is null, expected a finite number"),
    ({"agent_lr": float("nan")}, "'agent_lr' is NaN, expected a finite number"),
    ({"pack": "yes"}, "'pack' is \"yes\", expected true or false"),
    ({"max_batches": "all"}, "'max_batches' is \"all\", expected a whole number or null"),
    ({"model_name": ["tiny"]}, "'model_name' is [\"tiny\"], expected a string"),
    ({"batch_size": 0}, "--batch-size must be >= 1, got 0"),
    ({"mode": "half"}, "mode must be one of frozen, full, lora, got half"),
    ([1, 2], "top level is a list, expected an object of settings"),
    ("{", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ('{"epochs": 1, "epochs": 2}', "the key 'epochs' appears twice in the top-level object (a JSON "
                                   "reader keeps only the last value); remove or rename one"),
], ids=["epochs string", "epochs float", "weights list", "lr null", "lr NaN", "pack string",
        "max_batches string", "model_name list", "batch_size 0", "unknown mode", "top level list",
        "not JSON", "key twice"])
def test_bad_config_on_resume(tmp_path, capsys, config, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    (run / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1}\n')
    line = _one_error_line(capsys, ["train", "--resume", run])
    assert line == f"error: {run / 'config.json'}: {message}"


# --- a run's JSON-lines files ----------------------------------------------------------------

@pytest.mark.parametrize("line,message", [
    (b"[" * 50_000 + b"]" * 50_000, "line 2: nested deeper than 32 levels at column 33"),
    (b'{"seconds": ' + b"1" * 5000 + b"}", "line 2: a number has more than 4300 digits at column 13"),
    (b"[1]", "line 2: expected a JSON object, got list"),
], ids=["deep line", "5000-digit number", "not an object"])
def test_bad_eval_jsonl_in_report(tmp_path, capsys, line, message):
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1}\n')
    eval_path = run / "eval" / "eval.jsonl"
    eval_path.write_bytes(b'{"task_id": "a"}\n' + line + b'\n{"task_id": "b"}\n')
    assert _one_error_line(capsys, ["report", run]) == f"error: {eval_path}: {message}"


# --- every command that reads tasks says the same line ---------------------------------------

def test_every_command_reading_tasks_gives_the_same_line(tmp_path, capsys):
    path = _task_file(tmp_path, changed(("train", 0, "input", 1, 2), 10))
    expected = f"error: {path}: task bad, train[0].input row 1 col 2 is colour 10, colours are 0-9"
    sub = tmp_path / "submission.json"
    sub.write_text(json.dumps({"good1": [{"attempt_1": [[1]], "attempt_2": [[1]]}]}))
    for argv in (["data", "validate", path], ["data", "show", path, "good1"],
                 ["data", "export", path, tmp_path / "out.json"],
                 ["evaluate", "--data", path, "--output-dir", tmp_path / "eval", "--no-progress"],
                 ["solve", path], ["score", sub, "--data", path],
                 ["merge", tmp_path / "merged.json", sub, "--data", path]):
        assert _one_error_line(capsys, argv) == expected, argv


def test_evaluate_checkpoint_with_bad_config(tmp_path, capsys, write_json):
    data = write_json("tasks.json", GOOD)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model_name": "tiny", "lora_rank": "16"}))
    line = _one_error_line(capsys, ["evaluate", "--data", data, "--checkpoint", run, "--device", "cpu",
                                    "--output-dir", tmp_path / "eval", "--no-progress"])
    assert line == f"error: {run / 'config.json'}: 'lora_rank' is \"16\", expected a whole number"
