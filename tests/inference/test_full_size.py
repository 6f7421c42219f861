"""Full-size tasks: every demonstration in context, no task without a candidate, resumable runs."""

import json

import numpy as np
import pytest

from arc_efe.cli import main
from arc_efe.data.sources import load_tasks
from arc_efe.data.tokens import encode_task

OLD_CONTEXT = 768  # the shipped model's training length, and evaluate's context before full-size tasks


def _big_task(seed: int) -> dict:
    """Four 12x12 demonstrations of a flip: with its test input well over 768 tokens."""
    rng = np.random.default_rng(seed)
    grids = [rng.integers(0, 4, size=(12, 12)) for _ in range(5)]
    pairs = [{"input": g.tolist(), "output": g[:, ::-1].tolist()} for g in grids]
    return {"train": pairs[:4], "test": pairs[4:]}


@pytest.fixture
def big_tasks(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({f"big{k}": _big_task(k) for k in range(3)}))
    return path


def _evaluate(data, out, *extra):
    return main(["evaluate", "--data", str(data), "--checkpoint", "fresh", "--device", "cpu", "--views", "2",
                 "--decoder", "greedy", "--ttt-steps", "2", "--ttt-batch", "2", "--no-progress",
                 "--output-dir", str(out), *extra])


def _records(out):
    return [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]


def test_a_task_longer_than_the_old_context_keeps_every_demonstration_and_gets_candidates(big_tasks, tmp_path, capsys):
    task = load_tasks(big_tasks).tasks[0]
    assert len(encode_task(task.train, task.test[0].input).prompt) > OLD_CONTEXT
    assert _evaluate(big_tasks, tmp_path / "ev", "--task-ids", "big0") == 0
    out = capsys.readouterr().out
    [rec] = _records(tmp_path / "ev")
    assert rec["candidates"][0] >= 1 and rec["fallback"] == [None] and rec["dropped"] == [0]
    assert np.array(rec["attempts"][0]["attempt_1"]).shape == (12, 12)
    assert "tasks without a candidate from the model: 0 of 1" in out
    assert "demonstrations dropped to fit --max-context: 0 " in out
    # the old context answers it with demonstrations dropped, and says so
    assert _evaluate(big_tasks, tmp_path / "old", "--task-ids", "big0", "--max-context", str(OLD_CONTEXT)) == 0
    [old] = _records(tmp_path / "old")
    assert old["dropped"][0] >= 2 and old["candidates"][0] >= 1
    assert "demonstrations dropped to fit --max-context: 1 " in capsys.readouterr().out


def test_a_query_longer_than_the_context_still_gets_an_answer_and_the_reason(big_tasks, tmp_path, capsys):
    assert _evaluate(big_tasks, tmp_path / "ev", "--task-ids", "big1", "--max-context", "100") == 0
    out = capsys.readouterr().out
    [rec] = _records(tmp_path / "ev")
    task = load_tasks(big_tasks).by_id()["big1"]
    assert rec["candidates"] == [0] and rec["dropped"] == [4]
    assert "longer than the context" in rec["fallback"][0]
    assert rec["attempts"][0]["attempt_1"] == task.test[0].input.tolist()  # the fallback: the input as it is
    assert "tasks without a candidate from the model: 1 of 1 (1: the query alone is longer than the context)" in out


def test_a_stopped_evaluation_resumes_with_the_tasks_not_yet_answered(big_tasks, tmp_path, capsys):
    out = tmp_path / "ev"
    args = ("--max-side", "12", "--max-context", "1024")
    assert _evaluate(big_tasks, out, *args) == 0
    full = _records(out)
    assert [r["task_id"] for r in full] == ["big0", "big1", "big2"]
    # as if stopped during the third task: two lines written, the third cut off mid-write
    partial = "".join(json.dumps(r) + "\n" for r in full[:2]) + json.dumps(full[2])[:40]
    (out / "eval.partial.jsonl").write_text(partial)
    (out / "eval.jsonl").unlink()
    capsys.readouterr()
    assert _evaluate(big_tasks, out, *args, "--resume") == 0
    text = capsys.readouterr().out
    assert "resuming: 2 of 3 tasks already answered" in text
    rows = [line for line in text.splitlines() if line.startswith("big")]
    assert [r.split()[0] for r in rows] == ["big2"]  # only the task not yet answered ran
    again = _records(out)
    assert again[:2] == full[:2] and again[2]["attempts"] == full[2]["attempts"]
    assert not (out / "eval.partial.jsonl").exists()
    assert sorted(json.loads((out / "submission.json").read_text())) == ["big0", "big1", "big2"]
    # other settings: refused, naming what changed
    assert _evaluate(big_tasks, out, "--max-side", "12", "--max-context", "2048", "--resume") == 2
    assert "max_context (was 1024, now 2048)" in capsys.readouterr().err
