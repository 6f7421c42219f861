"""Solver2's memory at evaluation: solved training tasks recalled into test-time training."""

import json

import numpy as np
import pytest
import torch

from arc_efe.cli import main
from arc_efe.data.packing import make_batch
from arc_efe.data.tasks import Pair, Task
from arc_efe.inference import ttt as ttt_module
from arc_efe.inference.ttt import TestTimeTrainer, TTTConfig
from arc_efe.model.policy import Policy
from arc_efe.model.backbone import BackboneConfig, load_backbone
from arc_efe.solver2.memory import MemoryBank
from arc_efe.solver2 import recall as recall_module
from arc_efe.solver2.recall import Recall

from test_joint import _row_widths

ANSWERED_DEMO, TEST_IN, TEST_OUT, STORED = 3, 5, 7, 4  # grid sides
EVAL_ID = "00576224"  # an ARC-AGI-1 evaluation task id


def _grid(rng, side):
    return rng.integers(0, 10, size=(side, side)).astype(np.uint8)


def _task(task_id, seed, side, test=(TEST_IN, TEST_OUT), train=None):
    rng = np.random.default_rng(seed)
    train = train or tuple(Pair(_grid(rng, side), _grid(rng, side)) for _ in range(3))
    return Task(task_id, train, (Pair(_grid(rng, test[0]), _grid(rng, test[1])),))


def _bank_and_data(tmp_path, answered):
    """A bank of solved queries of stored tasks (4x4 grids), of the answered task and of an
    evaluation task id, and the task file they name as their data."""
    stored = [_task("s1", 1, STORED, (STORED, STORED)), _task("s2", 2, STORED, (STORED, STORED)),
              _task("twin", 3, STORED, (STORED, STORED), train=answered.train)]  # the answered task's demonstrations
    tasks = [*stored, answered, _task(EVAL_ID, 4, STORED, (STORED, STORED))]
    data = tmp_path / "stored.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    bank = MemoryBank(dim=128)
    for i, t in enumerate(tasks):
        bank.add(torch.randn(128), torch.randn(128),
                 {"task_id": t.id, "split": "test", "index": 0, "risk": 0.01 * i, "data": str(data)})
    bank.add(torch.randn(128), torch.randn(128), {"task_id": "gen-1", "split": "train", "index": 0, "risk": 0.0,
                                                  "data": "synthetic/flip_lr"})
    return bank, data


def test_recall_leaves_out_answered_and_evaluation_tasks_and_never_reads_their_answers(tmp_path, monkeypatch):
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    answered = _task("answered", 0, ANSWERED_DEMO)
    bank, _ = _bank_and_data(tmp_path, answered)
    recall = Recall.from_bank(policy, bank, [answered.id], 2048, tmp_path)
    assert sorted(q.task.id for q in recall.queries) == ["s1", "s2", "twin"]
    assert recall.left_out == {"an evaluation task or one being answered": 2, "a generated task": 1}
    # the nearest stored task is the one with the same demonstrations
    assert recall.nearest(policy, answered, 1, 2048)[0].task.id == "twin"

    seen = []

    def spy(examples, rows_of, packed=True):
        seen.extend(examples)
        return make_batch(examples, rows_of, packed)

    monkeypatch.setattr(ttt_module, "make_batch", spy)
    trainer = TestTimeTrainer(policy, TTTConfig(steps=12, batch=4, recall_k=2, recall_share=0.5, recall_gain=None),
                              recall=recall)
    with trainer.adapted(answered) as stats:
        pass
    assert stats.recalled[0] == "twin" and len(stats.recalled) == 2
    widths = [_row_widths(e.tokens) for e in seen]
    # the answered task's demonstrations (3 wide) and the recalled tasks' grids (4 wide, their
    # solved test pairs included); never the answered task's test input (5) or output (7)
    assert set().union(*widths) == {ANSWERED_DEMO, STORED}
    assert any(w == {STORED} for w in widths) and any(w == {ANSWERED_DEMO} for w in widths)


def test_the_check_keeps_stored_tasks_that_lower_every_leave_one_out_loss(tmp_path, monkeypatch):
    """Recall.helpful, with losses stood in for the model's: a stored task is kept only when its
    pairs lower the loss of each of the task's leave-one-out queries, by min_gain on average."""
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    answered = _task("answered", 0, ANSWERED_DEMO)
    recall = Recall.from_bank(policy, _bank_and_data(tmp_path, answered)[0], [answered.id], 2048, tmp_path)
    stand_in = {"answered": [0.5, 0.5, 0.5], "answered+s1": [0.4, 0.45, 0.3],  # every loss falls
                "answered+s2": [0.1, 0.1, 0.6],  # a large mean gain, but one query gets worse
                "answered+twin": [0.49, 0.49, 0.49]}  # every loss falls, by little
    queries = []
    monkeypatch.setattr(recall_module, "_example", lambda q, max_len: (queries.append(q), q)[1])
    monkeypatch.setattr(recall_module, "_answer_loss", lambda policy, q: stand_in[q.task.id][_own_index(q)])
    by_id = {q.task.id: q for q in recall.queries}
    candidates = [by_id["s1"], by_id["s2"], by_id["twin"]]
    assert [q.task.id for q in recall.helpful(policy, answered, candidates, 2048, 0.0)] == ["s1", "twin"]
    assert [q.task.id for q in recall.helpful(policy, answered, candidates, 2048, 0.05)] == ["s1"]
    assert recall.helpful(policy, answered, candidates, 2048, 0.2) == []
    # a candidate's pairs come first, its solved test pair with them; the queries are the task's own
    mixed = [q for q in queries if q.task.id == "answered+s1"][:3]  # of the first call
    assert [q.index for q in mixed] == [4, 5, 6] and mixed[0].task.train[3] is by_id["s1"].target
    assert all(q.task.test == () and q.task.train[4:] == answered.train for q in mixed)


def _own_index(query):
    """The index among the answered task's demonstrations of a query of a (mixed) task."""
    return query.index - (len(query.task.train) - 3)


def test_the_check_runs_the_model_and_never_reads_a_test_pair(tmp_path, monkeypatch):
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    answered = _task("answered", 0, ANSWERED_DEMO)
    recall = Recall.from_bank(policy, _bank_and_data(tmp_path, answered)[0], [answered.id], 2048, tmp_path)
    seen = []
    monkeypatch.setattr(recall_module, "make_batch",
                        lambda ex, rows_of, packed=True: (seen.extend(ex), make_batch(ex, rows_of))[1])
    near = recall.nearest(policy, answered, 3, 2048)
    assert recall.helpful(policy, answered, near, 2048, 1e9) == []  # no stored task gives that much
    # the task's demonstrations (3 wide) and the stored tasks' grids (4 wide); never the test pair
    assert set().union(*(_row_widths(e.tokens) for e in seen)) == {ANSWERED_DEMO, STORED}
    assert len(seen) == 3 + 3 * 3  # 3 leave-one-out queries alone, then with each stored task
    kept = recall.helpful(policy, answered, near, 2048, 0.0)
    assert all(q in near for q in kept)
    # too short a context for any stored task's pairs with the demonstrations: nothing passes
    assert recall.helpful(policy, answered, near, 60, 0.0) == []

    trainer = TestTimeTrainer(policy, TTTConfig(steps=2, batch=2, recall_k=1, recall_search=3), recall=recall)
    with trainer.adapted(answered) as stats:
        pass
    assert stats.checked == tuple(q.task.id for q in near) and len(stats.recalled) <= 1
    assert set(stats.recalled) <= {q.task.id for q in kept}
    with pytest.raises(ValueError, match="checks at least k"):
        TTTConfig(recall_k=3, recall_search=2)


def test_without_recall_the_sequences_are_unchanged(monkeypatch):
    """Memory off draws exactly what it drew before memory existed: same RNG stream."""
    answered = _task("answered", 0, ANSWERED_DEMO)
    runs = []
    for recall in (None, Recall([], torch.zeros(0, 128))):
        torch.manual_seed(0)
        policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
        seen = []
        monkeypatch.setattr(ttt_module, "make_batch",
                            lambda ex, rows_of, packed=True, seen=seen: (seen.extend(ex), make_batch(ex, rows_of))[1])
        with TestTimeTrainer(policy, TTTConfig(steps=3, batch=4), recall=recall).adapted(answered) as stats:
            pass
        runs.append(([e.tokens for e in seen], stats.recalled))
    assert runs[0] == runs[1] and runs[0][1] == ()


def test_evaluate_with_memory_recalls_and_a_damaged_bank_is_one_line(tmp_path, capsys):
    answered = _task("answered", 0, ANSWERED_DEMO)
    bank, data = _bank_and_data(tmp_path, answered)
    bank.save(tmp_path / "bank")
    tasks = tmp_path / "answer.json"
    tasks.write_text(json.dumps({answered.id: answered.to_json()}))
    args = ["evaluate", "--data", str(tasks), "--checkpoint", "fresh", "--device", "cpu", "--views", "1",
            "--decoder", "greedy", "--ttt-steps", "2", "--no-progress", "--memory", str(tmp_path / "bank")]
    assert main([*args, "--memory-gain", "off", "--output-dir", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "memory: 3 solved training tasks (left out: 1 entries: a generated task, 2 entries: an evaluation " \
           "task or one being answered)" in out and "trains on its 2 nearest (25%" in out
    record = json.loads((tmp_path / "ev" / "eval.jsonl").read_text())
    assert record["ttt"]["recalled"][0] == "twin" and len(record["ttt"]["recalled"]) == 2
    assert "checked" not in record["ttt"]
    # the default: the 3 nearest (all of them) checked, up to 2 trained on
    assert main([*args, "--memory-search", "3", "--output-dir", str(tmp_path / "ev1")]) == 0
    assert "up to 2 of its 3 nearest that lower its leave-one-out loss by 0.01 or more" in capsys.readouterr().out
    record = json.loads((tmp_path / "ev1" / "eval.jsonl").read_text())
    assert sorted(record["ttt"]["checked"]) == ["s1", "s2", "twin"]
    assert set(record["ttt"].get("recalled", [])) <= {"s1", "s2", "twin"}
    with pytest.raises(SystemExit):
        main([*args, "--memory-gain", "-1", "--output-dir", str(tmp_path / "ev4")])
    assert "expected a number >= 0 or off, got '-1'" in capsys.readouterr().err

    damaged = tmp_path / "bank" / "memory.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:50])
    assert main([*args, "--output-dir", str(tmp_path / "ev2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(damaged) in err[0], err
    assert not (tmp_path / "ev2").exists()
    assert main([*args[:-2], "--memory", str(tmp_path), "--output-dir", str(tmp_path / "ev3")]) == 2
    assert "no memory bank here (memory.json)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="a share in"):
        TTTConfig(recall_share=1.5)


def _line(task, attempts, data, **extra):
    return json.dumps({"task_id": task.id, "source": str(data), "solutions": None, "attempts": attempts,
                       "correct": [True], "risk": [0.25], **extra}) + "\n"


def test_bank_from_evaluations_stores_only_verified_training_answers(tmp_path, capsys):
    right, wrong = _task("right", 1, STORED, (STORED, STORED)), _task("wrong", 2, STORED, (STORED, STORED))
    evaluation = _task(EVAL_ID, 3, STORED, (STORED, STORED))
    data = tmp_path / "tasks.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in (right, wrong, evaluation)}))
    answer = lambda t: t.test[0].output.tolist()  # noqa: E731
    other = (right.test[0].output + 1) % 10
    evals = tmp_path / "ev"
    (evals / "shard_1").mkdir(parents=True)
    (evals / "shard_2").mkdir()
    # shard 1 finished (eval.jsonl), shard 2 was stopped (only its partial file): both are read
    (evals / "shard_1" / "eval.jsonl").write_text(
        _line(right, [{"attempt_1": other.tolist(), "attempt_2": answer(right)}], data)
        + _line(evaluation, [{"attempt_1": answer(evaluation), "attempt_2": answer(evaluation)}], data))
    # a line that claims a right answer which the official check does not confirm
    (evals / "shard_2" / "eval.partial.jsonl").write_text(
        _line(wrong, [{"attempt_1": answer(right), "attempt_2": [[0]]}], data))
    args = ["bank", str(evals), "--output", str(tmp_path / "bank"), "--checkpoint", "fresh", "--device", "cpu"]
    assert main(args) == 0
    assert "1 solved test outputs of 1 tasks from 3 task lines; left out 1: an evaluation task" in capsys.readouterr().out
    bank = MemoryBank.load(tmp_path / "bank")
    assert [(m["task_id"], m["split"], m["index"], m["risk"], m["data"]) for m in bank.meta] == \
        [("right", "test", 0, 0.25, str(data))]
    assert bank.keys.shape == (1, 128) and bool(torch.isfinite(bank.values).all())
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    recall = Recall.from_bank(policy, bank, ["answered"], 2048, tmp_path / "bank")
    assert [(q.task.id, q.split, q.index) for q in recall.queries] == [("right", "test", 0)]

    (evals / "shard_2" / "eval.partial.jsonl").write_text('{"task_id": "x"}\n{"task_id": "y"}\n')
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    partial = evals / "shard_2" / "eval.partial.jsonl"
    assert len(err) == 1 and f"{partial}: task line 1 has no source, attempts" in err[0], err
    assert main([*args[:1], str(tmp_path), *args[2:]]) == 2
    assert "no eval.jsonl or eval.partial.jsonl here" in capsys.readouterr().err
