"""Joint training over the tasks being answered: demonstrations only, kept for every task."""

import json

import numpy as np
import pytest
import torch

from arc_efe.cli import main
from arc_efe.data.packing import make_batch
from arc_efe.data.tasks import Pair, Task
from arc_efe.data.tokens import IN, ROW
from arc_efe.inference import ttt as ttt_module
from arc_efe.inference.ttt import TestTimeTrainer, TTTConfig
from arc_efe.model.policy import Policy
from arc_efe.model.backbone import BackboneConfig, load_backbone

DEMO, TEST_IN, TEST_OUT = 3, 5, 7  # grid sides: demonstrations, test inputs, test outputs


def _task(seed: int) -> Task:
    rng = np.random.default_rng(seed)
    grid = lambda side: rng.integers(0, 10, size=(side, side)).astype(np.uint8)  # noqa: E731
    train = tuple(Pair(grid(DEMO), grid(DEMO)) for _ in range(3))
    return Task(f"t{seed}", train, (Pair(grid(TEST_IN), grid(TEST_OUT)),))


def _row_widths(tokens: list[int]) -> set[int]:
    widths, run = set(), 0
    for t in tokens:
        if t == ROW:
            widths.add(run)
            run = 0
        elif t < 10:
            run += 1
        else:
            run = 0
    return widths


def test_joint_training_builds_sequences_from_demonstrations_only_and_keeps_its_weights(monkeypatch):
    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    trainer = TestTimeTrainer(policy, TTTConfig(steps=0, batch=4), joint=True)
    seen = []

    def spy(examples, rows_of, packed=True):
        seen.extend(examples)
        return make_batch(examples, rows_of, packed)

    monkeypatch.setattr(ttt_module, "make_batch", spy)
    tasks = [_task(k) for k in range(4)]
    before = [p.detach().clone() for p in trainer.params]
    stats = trainer.fit_jointly(tasks, steps=6, seconds=None)
    assert stats.steps == 6 and len(seen) == 24
    # every sequence holds 3x3 grids only: no test input (5 wide), no test output (7 wide)
    assert set().union(*(_row_widths(e.tokens) for e in seen)) == {DEMO}
    assert any(not torch.equal(p, b) for p, b in zip(trainer.params, before))
    # the jointly trained weights are where each task's own training starts and ends
    trained = [p.detach().clone() for p in trainer.params]
    trainer.cfg.steps = 2
    with trainer.adapted(tasks[0]):
        assert any(not torch.equal(p, t) for p, t in zip(trainer.params, trained))
    assert all(torch.equal(p, t) for p, t in zip(trainer.params, trained))
    # saved and loaded into a fresh trainer: the same weights
    other = TestTimeTrainer(Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32)), TTTConfig())
    other.load_joint_state(trainer.joint_state())
    assert all(torch.equal(p, t) for p, t in zip(other.params, trained))
    partial = dict(list(trainer.joint_state().items())[1:])
    with pytest.raises(ValueError, match="0 unknown or of another shape, 1 missing"):
        other.load_joint_state(partial)


def test_evaluate_with_joint_training_then_resume_reuses_the_saved_weights(tmp_path, capsys):
    data = tmp_path / "tasks.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in (_task(k) for k in range(3))}))
    out = tmp_path / "ev"
    args = ["evaluate", "--data", str(data), "--checkpoint", "fresh", "--device", "cpu", "--views", "1",
            "--decoder", "greedy", "--ttt-steps", "0", "--joint-seconds", "60", "--joint-steps", "3",
            "--no-progress", "--output-dir", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "joint training on the demonstrations of 3 tasks for up to 60 s" in text
    assert "joint training done: 3 steps" in text
    assert (out / "joint.safetensors").is_file()
    first = (out / "eval.jsonl").read_text()
    (out / "eval.jsonl").unlink()
    assert main(args + ["--resume"]) == 0
    text = capsys.readouterr().out
    assert f"joint training: the weights of {out / 'joint.safetensors'}" in text
    attempts = lambda text: [json.loads(x)["attempts"] for x in text.splitlines()]  # noqa: E731
    assert len(attempts(first)) == 3 and attempts((out / "eval.jsonl").read_text()) == attempts(first)


def test_task_vectors_train_on_single_demonstration_pairs_and_answer_each_view_with_its_vector(monkeypatch):
    from arc_efe.inference import task_vectors
    from arc_efe.inference.pipeline import InferenceConfig, solve_task
    from arc_efe.inference.task_vectors import TaskVectors, fit_pairs

    torch.manual_seed(0)
    policy = Policy(load_backbone(BackboneConfig(), torch.device("cpu"), torch.float32))
    tasks = [_task(k) for k in range(3)]
    vectors = TaskVectors(tasks, views=2, hidden=policy.backbone.get_input_embeddings().embedding_dim)
    seen = []

    def spy(examples, rows_of, packed=True):
        seen.extend(examples)
        return make_batch(examples, rows_of, packed)

    monkeypatch.setattr(task_vectors, "make_batch", spy)
    before = vectors.table.detach().clone()
    stats = fit_pairs(policy, vectors, steps=4, seconds=None, batch=4)
    assert stats.steps == 4 and len(seen) == 16
    # one pair per sequence (one IN), 3x3 grids only: no test input or output
    assert all(e.tokens.count(IN) == 1 for e in seen)
    assert set().union(*(_row_widths(e.tokens) for e in seen)) == {DEMO}
    assert not torch.equal(vectors.table, before)
    # answering: each view's prompt holds the test input alone, and gets that view's vector
    calls = []
    memory_fn = vectors.memory_fn(tasks[1])

    def recording(prompts):
        calls.append([list(p) for p in prompts])
        return memory_fn(prompts)

    cfg = InferenceConfig(views=2, decoder="greedy", max_side=TEST_OUT, in_context=False)
    result = solve_task(policy, tasks[1], cfg, memory_fn=recording)
    assert result.outputs[0].attempts and len(calls) == 1 and len(calls[0]) == 2
    assert all(p.count(IN) == 1 for p in calls[0])  # IN once: no demonstration in the prompt
