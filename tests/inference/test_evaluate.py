"""`arc-efe evaluate`: a submission the official scorer accepts with the same score."""

import json

from arc_efe.cli import main
from arc_efe.data.sources import load_tasks
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import train


def _score_line(text):
    return next(l for l in text.splitlines() if l.startswith("score "))


def test_evaluate_fresh_model_on_generated_tasks_then_score(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "--data", "synthetic", "--seed", "3", "--max-tasks", "3", "--device", "cpu",
                 "--output-dir", str(out), "--max-side", "6", "--ttt-steps", "0", "--checkpoint", "fresh"]) == 0
    first = _score_line(capsys.readouterr().out)
    sub = json.loads((out / "submission.json").read_text())
    tasks = load_tasks("synthetic", seed=3, count=3).tasks
    assert sorted(sub) == sorted(t.id for t in tasks)
    assert all(len(sub[t.id]) == len(t.test) for t in tasks)
    assert len((out / "eval.jsonl").read_text().splitlines()) == 3
    # the same tasks, exported with answers, scored by the official scorer
    data = tmp_path / "tasks.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    assert main(["score", str(out / "submission.json"), "--data", str(data), "--quiet"]) == 0
    assert _score_line(capsys.readouterr().out) == first


def test_evaluate_from_a_training_checkpoint(tmp_path, capsys):
    tasks = load_tasks("arc-agi-1/training").tasks[:3]
    data = tmp_path / "three.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    run = train(TrainConfig(data=str(data), output_dir=str(tmp_path), run_name="r", device="cpu", epochs=1,
                            max_batches=2, batch_size=2, val_fraction=0.0, train_eval_queries=2,
                            tensorboard=False, max_len=1024))
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--checkpoint", str(run), "--device", "cpu",
                 "--output-dir", str(tmp_path / "ev"), "--max-side", "6", "--ttt-steps", "0"]) == 0
    out = capsys.readouterr().out
    assert "over 3 tasks" in _score_line(out)
    assert main(["evaluate", "--data", str(data), "--checkpoint", str(tmp_path / "nowhere")]) == 2
