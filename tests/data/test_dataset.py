import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from arc_efe.data.dataset import ARCDataset, split_tasks
from arc_efe.data.sources import load_tasks

from conftest import small_task

ROOT = Path(__file__).resolve().parents[2]


def test_train_split_is_leave_one_out(write_json):
    path = write_json("training.json", {"a": small_task(0, n_train=3), "b": small_task(1, n_train=4)})
    ds = ARCDataset(str(path), split="train")
    assert len(ds) == 7
    item = ds[1]
    assert item["task_id"] == "a" and item["index"] == 1
    assert item["input"].dtype == torch.long and item["input"].shape == (2, 3)
    assert len(item["context"]) == 2
    task = load_tasks(path).tasks[0]
    ctx_inputs = [c["input"].tolist() for c in item["context"]]
    assert ctx_inputs == [task.train[0].input.tolist(), task.train[2].input.tolist()]
    assert item["input"].tolist() == task.train[1].input.tolist()


def test_test_split_uses_all_demonstrations(write_json):
    path = write_json("t.json", {"a": small_task(0, n_train=3, n_test=2)})
    ds = ARCDataset(str(path), split="test")
    assert len(ds) == 2 and len(ds[0]["context"]) == 3 and ds[0]["output"] is not None


def test_test_split_without_answers(write_json):
    path = write_json("q_challenges.json", {"a": small_task(0, with_answers=False)})
    assert ARCDataset(str(path), split="test")[0]["output"] is None


def test_holdout_is_by_task_deterministic_and_seedable():
    tasks = load_tasks("arc-agi-1/training").tasks
    rest, held = split_tasks(tasks, 0.1, seed=0)
    assert len(held) == 40 and len(rest) == 360
    assert not {t.id for t in rest} & {t.id for t in held}
    again = split_tasks(list(reversed(tasks)), 0.1, seed=0)[1]
    assert {t.id for t in again} == {t.id for t in held}  # independent of file order
    other = split_tasks(tasks, 0.1, seed=1)[1]
    assert {t.id for t in other} != {t.id for t in held}
    val = ARCDataset(tasks, split="train", val_fraction=0.1, val=True)
    fit = ARCDataset(tasks, split="train", val_fraction=0.1)
    assert {q.task.id for q in val.queries} == {t.id for t in held}
    assert not {q.task.id for q in val.queries} & {q.task.id for q in fit.queries}


def test_users_check_runs_verbatim_from_repo_root(tmp_path):
    """The users' own snippet, with training.json a Kaggle challenges-layout file."""
    tasks = load_tasks("arc-agi-1/training").tasks[:5]
    (tmp_path / "training.json").write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    snippet = (
        "from dataset_arc import ARCDataset\n"
        "ds = ARCDataset('training.json', split='train')\n"
        "print(f'Loaded {len(ds)} samples')\n"
        "batch = ds[0]\n"
        "print(f'Input shape: {batch[\"input\"].shape}')\n"
        "print(f'Output shape: {batch[\"output\"].shape}')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    n = sum(len(t.train) for t in tasks)
    assert f"Loaded {n} samples" in out
    assert f"Input shape: torch.Size([{tasks[0].train[0].input.shape[0]}, " in out
