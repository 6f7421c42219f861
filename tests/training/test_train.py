"""The training system on a tiny backbone: steps, overfitting, frozen/LoRA, resume, scripts."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from arc_efe.data.dataset import make_queries
from arc_efe.data.sequences import aligned_cells, collate, forward_example
from arc_efe.data.sources import load_tasks
from arc_efe.data.tokens import END, VOCAB_SIZE, try_decode_grid
from arc_efe.data.views import View, random_view
from arc_efe.model.policy import GridConstraint
from arc_efe.saved.config import TrainConfig
from arc_efe.training.evaluation import exact_accuracy
from arc_efe.training.run import setup, train

ROOT = Path(__file__).resolve().parents[2]


def _cfg(data, tmp_path, **kw):
    base = dict(data=str(data), output_dir=str(tmp_path), device="cpu", epochs=1, batch_size=4,
                val_fraction=0.0, train_eval_queries=4, max_val_tasks=2, tensorboard=False,
                warmup_steps=1, max_len=512)
    base.update(kw)
    return TrainConfig(**base)


def test_grid_constraint_only_lets_well_formed_grids_out():
    rng = np.random.default_rng(0)
    for _ in range(200):
        c, toks = GridConstraint(), []
        while not c.done:
            t = int(rng.choice(c.allowed()))
            toks.append(t)
            c.step(t)
        assert toks[-1] == END and try_decode_grid(toks) is not None


def test_consistency_alignment_maps_views_back_to_the_same_cells(small_tasks_file):
    """With 'logits' equal to each view's own target tokens, the aligned sides agree exactly."""
    q = make_queries(load_tasks(small_tasks_file).tasks, "train")[0]
    rng = np.random.default_rng(3)
    examples = [forward_example(q, random_view(rng, len(q.context)), None) for _ in range(2)]
    batch = collate(examples)
    logits = torch.nn.functional.one_hot(batch.targets, VOCAB_SIZE).float()
    a, b = aligned_cells(logits, batch.offsets, examples, [(0, 1)])
    h, w = q.target.output.shape
    assert a.shape == (h * w, VOCAB_SIZE) and torch.equal(a, b)
    assert a.argmax(-1).tolist() == q.target.output.reshape(-1).tolist()  # original colours back


def test_loss_falls_and_weights_change(small_tasks_file, tmp_path):
    run = setup(_cfg(small_tasks_file, tmp_path, agent_lr=3e-3, batch_size=8, augment=False))
    before = {n: p.detach().clone() for n, p in run.policy.named_parameters()}
    losses = [run.step(0, [run.micro_batch(0, 0)]).loss for _ in range(12)]
    assert losses[-1] < losses[0] * 0.8
    changed = [n for n, p in run.policy.named_parameters() if not torch.equal(before[n], p)]
    assert any("lm_head" in n for n in changed) and any("self_attn" in n for n in changed)


def test_frozen_backbone_moves_only_the_head(small_tasks_file, tmp_path):
    run = setup(_cfg(small_tasks_file, tmp_path, mode="frozen", agent_lr=1e-2))
    before = {n: p.detach().clone() for n, p in run.policy.named_parameters()}
    for s in range(2):
        run.step(0, [run.micro_batch(0, s)])
    for n, p in run.policy.named_parameters():
        if "lm_head" in n:
            assert not torch.equal(before[n], p), n
        else:
            assert torch.equal(before[n], p), n


def test_lora_moves_adapter_and_head_only(small_tasks_file, tmp_path):
    run = setup(_cfg(small_tasks_file, tmp_path, mode="lora", agent_lr=1e-2, lora_rank=4))
    before = {n: p.detach().clone() for n, p in run.policy.named_parameters()}
    for s in range(2):
        run.step(0, [run.micro_batch(0, s)])
    for n, p in run.policy.named_parameters():
        moved = not torch.equal(before[n], p)
        if "lora_B" in n or "lm_head" in n or "arc_positions" in n:  # grid positions train with LoRA
            assert moved, n
        elif "lora_A" not in n:
            assert not moved, n


def test_overfit_small_tasks_to_100_percent(small_tasks_file, tmp_path):
    """The users' 'very high LR + few batches' check: 4 small tasks memorised exactly."""
    tasks = load_tasks(small_tasks_file).tasks[:4]
    data = tmp_path / "four.json"
    data.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    weights = {"risk": 1.0, "ambiguity": 0.0, "consistency": 0.0, "bidirectional": 0.0, "step": 0.0}
    run = setup(_cfg(data, tmp_path, agent_lr=3e-3, augment=False, batch_size=16, warmup_steps=5,
                     weights=weights))
    accuracy = 0.0
    for step in range(1, 301):
        run.step(0, [run.micro_batch(0, 0)])
        if step % 25 == 0:
            right, total = exact_accuracy(run.policy, run.queries, run.cfg.max_len)
            accuracy = right / total
            if accuracy == 1.0:
                break
    assert accuracy == 1.0, f"{right}/{total} after {step} steps"


# --- Solver2 in training ---------------------------------------------------------------

RISK_ONLY = {"risk": 1.0, "ambiguity": 0.0, "consistency": 0.0, "bidirectional": 0.0, "step": 0.1}


def _easy_cfg(data, tmp_path, **kw):
    """Four tiny tasks, no views, high lr: the model solves queries within one short epoch."""
    return _cfg(data, tmp_path, **{**dict(agent_lr=3e-3, augment=False, batch_size=16, warmup_steps=5,
                                          max_batches=120, weights=dict(RISK_ONLY)), **kw})


def _steps(run_dir):
    return [json.loads(l) for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
            if json.loads(l)["kind"] == "step"]


class Interrupt(Exception):
    pass


@pytest.fixture
def one_thread():
    """Bit-exact resume is checked on one CPU thread. With two threads and packed rows, the
    resumed run drifts from the uninterrupted one by ~2e-5 relative within ten steps, while two
    uninterrupted runs agree exactly and padded rows resume exactly; the cause is not found yet
    (a kernel whose rounding depends on the restored tensors' layout is the suspect)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_resume_continues_exactly(four_tasks_file, tmp_path, one_thread):
    """Stop a run inside its second epoch, resume it: same losses, same memory bank."""
    from arc_efe.solver2.memory import MemoryBank

    kw = dict(epochs=2, max_batches=50)
    train(_easy_cfg(four_tasks_file, tmp_path, run_name="full", **kw))

    def stop_in_epoch_two(result):
        if result.step >= 50:  # steps count from 0: this is the first step of epoch 2
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_easy_cfg(four_tasks_file, tmp_path, run_name="cut", **kw), callbacks=[stop_in_epoch_two])
    cut = tmp_path / "cut"
    assert len(_steps(cut)) == 51  # the step of epoch 2 was logged before the interrupt
    saved = MemoryBank.load(cut / "checkpoints" / "step_0000050")
    assert len(saved) > 0, "the memory should hold solutions by the end of epoch 1"
    train(TrainConfig.from_dict(json.loads((cut / "config.json").read_text())), resume=cut)
    a, b = _steps(tmp_path / "full"), _steps(cut)
    assert [r["step"] for r in b] == list(range(1, 101))
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)
    bank_a, bank_b = MemoryBank.load(tmp_path / "full" / "memory"), MemoryBank.load(cut / "memory")
    assert bank_a.meta == bank_b.meta and torch.allclose(bank_a.keys, bank_b.keys, atol=1e-6)


def test_root_script_runs_verbatim(tmp_path):
    """The users' command line, on CPU, from a working directory without training.json."""
    cmd = [sys.executable, str(ROOT / "trainloop_gpu_finetuned.py"), "--epochs", "1", "--max-batches", "3",
           "--no-freeze-qwen", "--agent-lr", "1e-3", "--device", "cpu",
           "--train-eval-queries", "4", "--max-val-tasks", "2", "--max-len", "1024"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "start: the shipped pretrained model /" in r.stdout  # from elsewhere: its absolute path, no ../..
    for text in ("start: the shipped pretrained model", "Loss:", "Memory bank updates:", "Training Accuracy:",
                 "Validation Accuracy:", "report:", "run folder:"):
        assert text in r.stdout
    run_dir = tmp_path / r.stdout.split("run folder:")[1].strip()
    assert f"report: {run_dir.relative_to(tmp_path) / 'report.html'}\n" in r.stdout
    for name in ("config.json", "metrics.jsonl", "diagnosis.txt", "checkpoints/latest", "report.html"):
        assert (run_dir / name).exists(), name
    steps = _steps(run_dir)
    assert len(steps) == 3 and set(steps[0]) >= {"step", "epoch", "loss", "components", "lr", "grad_norm",
                                                  "tokens_per_s"}


def test_bad_setting_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
    r = subprocess.run([sys.executable, str(ROOT / "trainloop_gpu_finetuned.py"), "--epochs", "0"],
                       cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip() == "error: --epochs must be >= 1, got 0"


def test_memory_fills_with_verified_answers_and_never_sees_its_own_task(four_tasks_file, tmp_path,
                                                                         monkeypatch):
    from arc_efe.solver2 import retrieval as s2mod
    from arc_efe.solver2.memory import MemoryBank

    run = setup(_easy_cfg(four_tasks_file, tmp_path, run_name="fill"))
    stored, searches, snapshot = [], [], {}
    real_add, real_search, real_call = MemoryBank.add, MemoryBank.search, s2mod.MemoryWriter.__call__

    def snapshot_call(writer, result):
        snapshot["bank"] = copy.deepcopy(writer.bank)  # the bank the writer decodes with
        return real_call(writer, result)

    def checked_add(bank, key, value, meta):
        # independent check at the moment of storing: the greedy answer must be exact
        q = next(q for q in run.queries if (q.task.id, q.split, q.index) ==
                 (meta["task_id"], meta["split"], meta["index"]))
        assert meta["data"] == q.task.source  # where evaluate --memory loads the task again
        view = View(meta["dihedral"], tuple(meta["colours"]))
        memory, _ = run.solver2.readout(snapshot["bank"], key[None], [q.task.id])
        answer = s2mod.decode_queries(run.policy, [q], view, run.cfg.max_len, memory)[0]
        stored.append(s2mod.grids_equal(answer, q.target.output))
        return real_add(bank, key, value, meta)

    def spy_search(bank, query, k, exclude_tasks=None):
        nb = real_search(bank, query, k, exclude_tasks)
        searches.append((list(exclude_tasks or []), [[bank.meta[i]["task_id"] for i in row if i >= 0]
                                                      for row in nb.index.tolist()]))
        return nb

    monkeypatch.setattr(s2mod.MemoryWriter, "__call__", snapshot_call)
    monkeypatch.setattr(MemoryBank, "add", checked_add)
    monkeypatch.setattr(MemoryBank, "search", spy_search)
    seen = []  # (right, checked) of each step taken: what the epoch's training accuracy counts
    run.fit([lambda r: seen.append((sum(r.cells_right), len(r.cells_right))) if not r.skipped else None])
    rec = [json.loads(l) for l in (tmp_path / "fill" / "metrics.jsonl").read_text().splitlines()][-1]
    assert rec["memory_adds"] > 0 and rec["memory_size"] == len(run.bank) > 0
    assert (rec["batch_right"], rec["batch_total"]) == tuple(map(sum, zip(*seen)))
    assert 0 < rec["batch_right"] <= rec["batch_total"] == 120 * 16
    assert rec["batch_accuracy"] == rec["batch_right"] / rec["batch_total"]
    # a stored query solved again is counted as known, not added again: both come from the right grids
    assert rec["memory_known"] > 0 and rec["memory_adds"] + rec["memory_known"] <= rec["batch_right"]
    assert rec["memory_queries"] == 120 * 16 or rec["memory_queries"] >= rec["memory_adds"]
    assert stored and all(stored), "an entry was stored whose greedy answer is not exact"
    assert searches, "the filled memory was never searched"
    for excluded, rows in searches:
        for own, found in zip(excluded, rows):
            assert own not in found
    assert (tmp_path / "fill" / "memory" / "memory.json").exists()


def test_step_term_is_zero_in_training(small_tasks_file, tmp_path):
    """No refinement: the users' `step` term is logged as 0 while the others count."""
    run = setup(_cfg(small_tasks_file, tmp_path, run_name="step"))
    outcome = run.step(0, [run.micro_batch(0, 0)])
    assert outcome.components["step"] == 0.0
    assert outcome.components["risk"] > 0 and outcome.components["bidirectional"] > 0


def test_compile_trains_the_compiled_forward_and_saves_plain_names(small_tasks_file, tmp_path, monkeypatch, capsys):
    """--compile: the step runs through torch.compile (the eager backend here: the same graph
    capture, no code generation, so the test is fast); losses equal the uncompiled run's, and
    the checkpoint holds the uncompiled module's names. Without a C++ compiler on CPU: a warning."""
    from safetensors import safe_open

    from arc_efe.model import compiling

    monkeypatch.setattr(compiling, "BACKEND", "eager")
    kw = dict(max_batches=2, batch_size=2, memory=False, train_eval_queries=1, max_val_tasks=1)
    run = setup(_cfg(small_tasks_file, tmp_path, run_name="compiled", compile=True, **kw))
    assert isinstance(run.model.backbone, torch._dynamo.eval_frame.OptimizedModule)
    assert run.model.backbone._orig_mod is run.policy.backbone
    compiled = run.fit()
    plain = train(_cfg(small_tasks_file, tmp_path, run_name="plain", **kw))
    assert [r["loss"] for r in _steps(compiled)] == pytest.approx([r["loss"] for r in _steps(plain)], rel=1e-4)
    ckpt = compiled / "checkpoints" / (compiled / "checkpoints" / "latest").read_text().strip() / "model.safetensors"
    with safe_open(str(ckpt), "pt") as f:
        names = list(f.keys())
    assert names and not any("_orig_mod" in n for n in names)

    monkeypatch.setattr(compiling, "cpp_compiler", lambda: None)
    monkeypatch.setattr(compiling, "BACKEND", "inductor")
    capsys.readouterr()
    run = setup(_cfg(small_tasks_file, tmp_path, run_name="no_cxx", compile=True, **kw))
    assert run.model is None and compiling.NO_COMPILER in capsys.readouterr().out
