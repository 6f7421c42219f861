"""The shipped pretrained model (models/arc-efe-tiny) and model folders: checksums, damage,
evaluate's default, export and train --init."""

import argparse
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from arc_efe.cli import main
from arc_efe.data.files import read_safetensors
from arc_efe.data.sources import load_tasks
from arc_efe.inference.evaluate import load_policy
from arc_efe.model.backbone import changeable_weights
from arc_efe.saved.config import TrainConfig
from arc_efe.saved.modelfolder import SHIPPED, model_source, read_model_folder
from arc_efe.training.run import train

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_task_file(tmp_path: Path, task_id: str = "e633a9e5") -> Path:
    task = next(t for t in load_tasks("arc-agi-1/evaluation").tasks if t.id == task_id)
    path = tmp_path / "one.json"
    path.write_text(json.dumps({task.id: task.to_json()}))
    return path


def test_shipped_files_match_the_model_card_and_load():
    card = (SHIPPED / "README.md").read_text()
    listed = dict(re.findall(r"\|\s*`?([\w.]+)`?\s*\|\s*\d+\s*\|\s*`?([0-9a-f]{64})`?\s*\|", card))
    manifest = json.loads((SHIPPED / "manifest.json").read_text())["files"]
    assert set(listed) == set(manifest) == {"config.json", "model.safetensors"}
    for name, digest in listed.items():
        assert digest == manifest[name]["sha256"] == _sha256(SHIPPED / name), name
    assert (SHIPPED / "model.safetensors").stat().st_size <= 25 * 2**20
    spec = read_model_folder(SHIPPED)
    policy, solver2, bank, max_len = load_policy(SHIPPED, "tiny", CPU)
    saved = read_safetensors(spec.weights, "test")
    for name, t in changeable_weights(policy.backbone).items():
        assert torch.equal(t, saved[name]), name
    assert (solver2, bank, max_len) == (None, None, spec.max_len)
    assert policy.backbone.arc_positions.kind == spec.positions


@pytest.mark.parametrize("damage", ["flip", "truncate", "config"])
def test_a_damaged_copy_is_refused_with_one_line(tmp_path, capsys, damage):
    copy = tmp_path / "copy"
    shutil.copytree(SHIPPED, copy)
    target = copy / ("config.json" if damage == "config" else "model.safetensors")
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert main(["evaluate", "--data", str(_one_task_file(tmp_path)), "--checkpoint", str(copy),
                 "--device", "cpu", "--ttt-steps", "0", "--no-progress", "--output-dir", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and "damaged" in err[0], err
    assert not (tmp_path / "ev").exists()
    assert main(["train", "--init", str(copy), "--epochs", "1", "--max-batches", "1", "--device", "cpu",
                 "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and "damaged" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_evaluate_starts_from_the_shipped_model_unless_told_fresh(tmp_path, capsys):
    data = _one_task_file(tmp_path)
    common = ["--data", str(data), "--device", "cpu", "--ttt-steps", "0", "--views", "1",
              "--decoder", "greedy", "--no-progress"]
    outputs = {}
    for name, extra in (("default", []), ("explicit", ["--checkpoint", str(SHIPPED)]),
                        ("fresh", ["--checkpoint", "fresh"])):
        assert main(["evaluate", *common, *extra, "--output-dir", str(tmp_path / name)]) == 0
        outputs[name] = capsys.readouterr().out.splitlines()
    assert "shipped pretrained model" in outputs["default"][0] and str(SHIPPED) in outputs["default"][0]
    assert outputs["explicit"][0] == f"model: {SHIPPED}"
    assert "untrained" in outputs["fresh"][0]
    answers = {n: (tmp_path / n / "submission.json").read_text() for n in outputs}
    assert answers["default"] == answers["explicit"] != answers["fresh"]


def _train_config(*flags):
    from arc_efe.training.flags import add_train_args, config_from_args

    parser = argparse.ArgumentParser()
    add_train_args(parser)
    return config_from_args(parser.parse_args(["--device", "cpu", *flags]))


def test_train_starts_from_the_shipped_model_unless_told(tmp_path, capsys):
    """No model named, on a CPU: the shipped model is the start, and the first lines say so.
    --init none, a named preset, other grid positions or another mode start from random weights."""
    shipped = read_model_folder(SHIPPED)
    cfg = _train_config()
    assert (cfg.init, cfg.model_name, cfg.positions) == (str(SHIPPED), shipped.model_name, shipped.positions)
    for flags in (["--init", "none"], ["--model-name", "tiny"], ["--positions", "1d"], ["--freeze-qwen"],
                  ["--lora"]):
        assert _train_config(*flags).init is None, flags
    assert _train_config("--positions", shipped.positions).init == str(SHIPPED)

    data = _one_task_file(tmp_path)
    common = ["--data", str(data), "--epochs", "1", "--max-batches", "1", "--batch-size", "2",
              "--val-fraction", "0", "--train-eval-queries", "1", "--icl-tasks", "0", "--max-len", "1024",
              "--device", "cpu", "--no-tensorboard", "--output-dir", str(tmp_path)]
    capsys.readouterr()
    assert main(["train", *common, "--run-name", "default"]) == 0
    out = capsys.readouterr().out.splitlines()
    model_at = next(i for i, line in enumerate(out) if line.startswith("model: "))
    assert out[model_at + 1].startswith(f"start: the shipped pretrained model {os.path.relpath(SHIPPED)} "), out[:6]
    start = read_safetensors(tmp_path / "default" / "checkpoints" / "step_0000000" / "model.safetensors", "test")
    weights = read_safetensors(shipped.weights, "test")
    assert weights.keys() <= start.keys() and all(torch.equal(start[k], weights[k]) for k in weights)

    assert main(["train", *common, "--init", "none", "--run-name", "random"]) == 0
    out = capsys.readouterr().out.splitlines()
    model_at = next(i for i, line in enumerate(out) if line.startswith("model: "))
    assert out[model_at + 1].startswith("start: random weights: it learns ARC from nothing"), out[:6]
    start = read_safetensors(tmp_path / "random" / "checkpoints" / "step_0000000" / "model.safetensors", "test")
    assert any(not torch.equal(start[k], weights[k]) for k in weights if k in start)


def test_export_then_train_init_starts_from_the_exported_weights(tmp_path, capsys):
    tasks = load_tasks("arc-agi-1/training").tasks[:2]
    data = tmp_path / "two.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    common = dict(data=str(data), output_dir=str(tmp_path), device="cpu", epochs=1, max_batches=2,
                  batch_size=2, val_fraction=0.0, train_eval_queries=1, icl_tasks=0, tensorboard=False,
                  max_len=1024, positions="2d-mirror")
    first = train(TrainConfig(run_name="first", **common))
    # from random weights, training names the shipped model to start from instead
    assert "start: random weights: it learns ARC from nothing" in capsys.readouterr().out
    folder = tmp_path / "models" / "mine"
    assert main(["export", str(first), str(folder)]) == 0
    spec = read_model_folder(folder)
    assert (spec.model_name, spec.positions, spec.max_len) == ("tiny", "2d-mirror", 1024)
    exported = read_safetensors(folder / "model.safetensors", "test")
    last = read_safetensors(model_source(first).weights, "test")
    assert exported.keys() == last.keys() and all(torch.equal(exported[k], last[k]) for k in last)

    # train --init: the model and positions come from the folder; step 0 holds its weights
    capsys.readouterr()
    assert main(["train", "--init", str(folder), "--data", str(data), "--epochs", "1", "--max-batches", "1",
                 "--batch-size", "2", "--val-fraction", "0", "--train-eval-queries", "1", "--icl-tasks", "0",
                 "--max-len", "1024", "--device", "cpu", "--no-tensorboard", "--output-dir", str(tmp_path),
                 "--run-name", "second"]) == 0
    assert f"start: the weights of {folder}\n" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "second" / "config.json").read_text())
    assert (cfg["init"], cfg["positions"]) == (str(folder), "2d-mirror")
    start = read_safetensors(tmp_path / "second" / "checkpoints" / "step_0000000" / "model.safetensors", "test")
    assert all(torch.equal(start[k], exported[k]) for k in exported)
    end = read_safetensors(model_source(tmp_path / "second").weights, "test")
    assert any(not torch.equal(end[k], exported[k]) for k in exported)  # and it trains from there

    # settings that do not fit the weights, and a LoRA run, are refused with one line
    capsys.readouterr()
    for extra, words in ((["--positions", "1d"], "--positions 1d does not fit"),
                         (["--model-name", "small"], "--model-name small does not fit")):
        assert main(["train", "--init", str(folder), *extra, "--device", "cpu", "--epochs", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    lora = train(TrainConfig(run_name="lora", mode="lora", lora_rank=2, **common))
    capsys.readouterr()
    assert main(["export", str(lora), str(tmp_path / "models" / "lora")]) == 2
    assert "LoRA run" in capsys.readouterr().err
    assert not (tmp_path / "models" / "lora").exists()


def _make_variable(name: str) -> str:
    text = (ROOT / "Makefile").read_text()
    return re.search(rf"^{name} := (.+)$", text, re.M).group(1).strip()


def test_the_shipped_model_solves_the_demos_tasks_with_the_demos_settings(tmp_path, capsys):
    """The quick form of the demo's promise (the slow test below runs the demo itself)."""
    tasks = _make_variable("DEMO_TASKS").split()
    assert main(["evaluate", "--data", "arc-agi-1/evaluation", "--task-ids", *tasks, "--device", "cpu",
                 "--ttt-steps", _make_variable("DEMO_TTT_STEPS"), "--no-progress",
                 "--output-dir", str(tmp_path / "ev")]) == 0
    records = [json.loads(l) for l in (tmp_path / "ev" / "eval.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == sorted(tasks)
    assert sum(all(r["correct"]) for r in records) >= 1, capsys.readouterr().out


@pytest.mark.slow
def test_make_demo_shows_learning(tmp_path):
    """`make demo` as a user runs it: training accuracy > 0, memory adds > 0, a task solved."""
    import subprocess
    import sys

    r = subprocess.run(["make", "-C", str(ROOT), "demo", f"PY={sys.executable}", "STAMP=",
                        f"DEMO_DIR={tmp_path}"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    accuracies = [float(x) for x in re.findall(r"Training Accuracy: ([\d.]+)%", out)]
    adds = [int(x) for x in re.findall(r"Memory bank updates: (\d+)/", out)]
    solved = re.search(r"(\d+) tasks? fully solved", out)
    assert accuracies and max(accuracies) > 0, out
    assert adds and sum(adds) > 0, out
    assert solved and int(solved.group(1)) >= 1, out
    assert any(line.startswith("report: ") for line in out.splitlines()[-3:]), out[-500:]
