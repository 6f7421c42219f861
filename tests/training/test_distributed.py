"""Two ranks on gloo (torchrun) against one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arc_efe.data.sources import load_tasks
from arc_efe.data.tokens import encode_task
from arc_efe.saved.config import TrainConfig
from arc_efe.training.run import train

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tasks_file(tmp_path_factory):
    def size(t):
        return sum(len(encode_task(t.train, p.input, p.output).tokens) for p in t.test)
    tasks = sorted(load_tasks("arc-agi-1/training").tasks, key=size)[:4]
    path = tmp_path_factory.mktemp("ddp") / "four.json"
    path.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    return path


def _cfg(tasks_file, out: Path, **kw) -> TrainConfig:
    # success rule "10": every checked query is stored, so the bank grows on every step
    base = dict(data=str(tasks_file), output_dir=str(out), device="cpu", epochs=1, max_batches=6,
                batch_size=2, val_fraction=0.0, train_eval_queries=2, max_val_tasks=1,
                tensorboard=False, warmup_steps=1, max_len=512, agent_lr=3e-3,
                success_threshold="10")
    base.update(kw)
    return TrainConfig(**base)


def test_two_ranks_match_one_process(tasks_file, tmp_path):
    cfg = _cfg(tasks_file, tmp_path / "ddp", run_name="ddp")
    r = _torchrun_worker(cfg, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("run folder:") == 1  # only rank 0 prints

    # one run folder, written once
    assert [p.name for p in (tmp_path / "ddp").iterdir()] == ["ddp"]
    run_dir = tmp_path / "ddp" / "ddp"
    records = _records(run_dir)
    steps = [x for x in records if x["kind"] == "step"]
    assert [x["step"] for x in steps] == [1, 2, 3]  # 6 micro-batches, 2 per step
    assert sum(x["kind"] == "epoch" for x in records) == 1
    assert (run_dir / "checkpoints" / "latest").is_file()

    # the ranks hold the same weights and the same memory bank
    a, b = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in range(2))
    assert a["world"] == b["world"] == 2
    assert a["sharded"] == 0 and a["restored"] and b["restored"]
    assert a["params"].keys() == b["params"].keys()
    for name, p in a["params"].items():
        assert torch.equal(p, b["params"][name]), name
    assert len(a["meta"]) > 0 and a["meta"] == b["meta"] and torch.equal(a["keys"], b["keys"])

    # one process, same global batch (2 micro-batches per step), same losses and bank
    single = train(_cfg(tasks_file, tmp_path / "one", run_name="one", grad_accum_steps=2))
    one = [x for x in _records(single) if x["kind"] == "step"]
    assert [x["loss"] for x in steps] == pytest.approx([x["loss"] for x in one], rel=1e-4)
    for x, y in zip(steps, one):
        assert x["components"] == pytest.approx(y["components"], rel=1e-4, abs=1e-6)
    meta = json.loads((single / "memory" / "memory.json").read_text())["entries"]
    assert [m["task_id"] for m in meta] == [m["task_id"] for m in a["meta"]]
    assert [x["memory_size"] for x in records if x["kind"] == "epoch"] == [len(meta)]

    # resume the two-rank run in one process (data position in global micro-batches): the
    # second epoch goes on exactly as the single-process run's
    def resumed(run_dir: Path) -> list[float]:
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        cfg.epochs, cfg.grad_accum_steps = 2, 2
        train(cfg, resume=run_dir)
        return [x["loss"] for x in _records(run_dir) if x["kind"] == "step" and x["step"] > 3]

    from_ddp, from_one = resumed(run_dir), resumed(single)
    assert len(from_ddp) == 3 and from_ddp == pytest.approx(from_one, rel=1e-4)


def test_evaluate_under_torchrun_splits_tasks_and_rank0_merges(tmp_path):
    """Two ranks answer half the tasks each; rank 0 writes the submission one process writes."""
    from arc_efe.cli import main

    common = ["--data", "synthetic", "--seed", "3", "--max-tasks", "3", "--device", "cpu",
              "--max-side", "6", "--ttt-steps", "0", "--views", "2", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "arc_efe", "evaluate",
           *common, "--output-dir", str(tmp_path / "two")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()  # rank 0 alone writes and reports
    assert sum(x.startswith("wrote ") for x in lines) == 1 and sum(x.startswith("score ") for x in lines) == 1
    assert len([x for x in lines if x.startswith("task ")]) == 1  # one table
    assert main(["evaluate", *common, "--output-dir", str(tmp_path / "one")]) == 0
    two, one = ((tmp_path / d / "submission.json").read_text() for d in ("two", "one"))
    assert len(json.loads(two)) == 3 and json.loads(two) == json.loads(one)
    lines = [(tmp_path / d / "eval.jsonl").read_text().splitlines() for d in ("two", "one")]
    assert [json.loads(x)["task_id"] for x in lines[0]] == [json.loads(x)["task_id"] for x in lines[1]]


def _torchrun_worker(cfg: TrainConfig, tmp_path: Path) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(ROOT / "tests" / "training" / "ddp_worker.py"), str(cfg_file), str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_fsdp_two_ranks_match_one_process(tasks_file, tmp_path):
    """--fsdp on 2 gloo ranks: the backbone sharded, the same losses as one process with the
    same global batch (5 micro-batches: the last step gives rank 1 a zero-weight one), and a
    checkpoint of whole tensors that loads into a plain model."""
    from arc_efe.model.backbone import BackboneConfig, load_backbone, load_trainable

    kw = dict(max_batches=5)
    r = _torchrun_worker(_cfg(tasks_file, tmp_path / "fsdp", run_name="fsdp", fsdp=True, **kw), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "fsdp" / "fsdp"
    steps = [x for x in _records(run_dir) if x["kind"] == "step"]
    single = train(_cfg(tasks_file, tmp_path / "one", run_name="one", grad_accum_steps=2, **kw))
    one = [x for x in _records(single) if x["kind"] == "step"]
    assert [x["step"] for x in steps] == [1, 2, 3]
    assert [x["loss"] for x in steps] == pytest.approx([x["loss"] for x in one], rel=1e-4)
    assert [x["grad_norm"] for x in steps] == pytest.approx([x["grad_norm"] for x in one], rel=1e-4)

    a, b = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in range(2))
    assert a["sharded"] > 0 and a["sharded"] == b["sharded"]  # DTensors: the backbone was sharded
    assert a["restored"] and b["restored"]  # the checkpoint loads back into the shards
    ckpt = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    plain = load_backbone(BackboneConfig(model_name="tiny"), torch.device("cpu"), torch.float32)
    load_trainable(plain, ckpt / "model.safetensors")
    for name, p in plain.named_parameters():
        assert torch.equal(p, a["params"][f"backbone.{name}"]), name
        assert torch.equal(p, b["params"][f"backbone.{name}"]), name
    mine = load_backbone(BackboneConfig(model_name="tiny"), torch.device("cpu"), torch.float32)
    load_trainable(mine, single / "checkpoints" / ckpt.name / "model.safetensors")
    for (name, p), q in zip(plain.named_parameters(), mine.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_fsdp_needs_torchrun(tasks_file, tmp_path):
    from arc_efe.errors import ArcEfeError
    from arc_efe.model.sharding import NOT_LAUNCHED

    with pytest.raises(ArcEfeError, match="torchrun"):
        train(_cfg(tasks_file, tmp_path, fsdp=True))
    assert "\n" not in NOT_LAUNCHED
