"""Runs survive kills, signals, NaN steps, damaged checkpoints and full disks; nothing unsafe loads.

The kill tests run the real command line in subprocesses on one CPU thread (bit-exact resume:
see test_train.one_thread) and compare the interrupted-and-resumed run with an uninterrupted one.
"""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from arc_efe.cli import train_main
from arc_efe.data.files import read_safetensors
from arc_efe.errors import ArcEfeError
from arc_efe.saved import checkpoint as ckmod
from arc_efe.saved.checkpoint import CheckpointError, find_checkpoint, load_plain, verify_checkpoint
from arc_efe.saved.config import TrainConfig
from arc_efe.solver2.memory import MemoryBank
from arc_efe.training.stopping import TrainingStopped
from arc_efe.training.run import setup, train

ROOT = Path(__file__).resolve().parents[2]
RISK_ONLY = ["--ambiguity-weight", "0", "--consistency-weight", "0", "--bidirectional-weight", "0",
             "--step-weight", "0.1"]


def _args(data, out, name, epochs=2, batches=30, every=4):
    """Four tiny tasks from random weights, high lr: the memory bank fills during epoch 2."""
    return ["--data", str(data), "--init", "none", "--device", "cpu", "--epochs", str(epochs),
            "--max-batches", str(batches),
            "--batch-size", "16", "--agent-lr", "3e-3", "--no-augment", "--warmup-steps", "5", *RISK_ONLY,
            "--val-fraction", "0", "--train-eval-queries", "4", "--max-val-tasks", "2", "--max-len", "512",
            "--no-tensorboard", "--output-dir", str(out), "--run-name", name, "--save-every-steps", str(every)]


def _cfg(data, out, name, **kw):
    base = dict(data=str(data), output_dir=str(out), run_name=name, device="cpu", epochs=1, max_batches=8,
                batch_size=8, agent_lr=3e-3, augment=False, warmup_steps=2, val_fraction=0.0,
                train_eval_queries=2, max_val_tasks=1, max_len=512, tensorboard=False,
                weights={"risk": 1.0, "ambiguity": 0.0, "consistency": 0.0, "bidirectional": 0.0, "step": 0.0})
    base.update(kw)
    return TrainConfig(**base)


def _popen(args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen([sys.executable, "-m", "arc_efe", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(run_dir, kind):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _without(records, *keys):
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


def _stop_after(proc, run_dir, n_steps, sig):
    """Send `sig` as soon as `n_steps` step lines are in the metrics file (mid-step, then)."""
    metrics = Path(run_dir) / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count('"kind": "step"') >= n_steps:
            proc.send_signal(sig)
            break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _weights(run_dir):
    ckpt = find_checkpoint(Path(run_dir))
    return read_safetensors(ckpt / "model.safetensors", "weights")


def _assert_same_run(a, b):
    """Same weights, step lines (but speed), epoch lines (but time) and memory bank."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    steps_a, steps_b = _records(a, "step"), _records(b, "step")
    assert [r["step"] for r in steps_b] == list(range(1, len(steps_a) + 1)), "a step line lost or repeated"
    assert _without(steps_a, "tokens_per_s") == _without(steps_b, "tokens_per_s")
    assert _without(_records(a, "epoch"), "seconds") == _without(_records(b, "epoch"), "seconds")
    bank_a, bank_b = MemoryBank.load(Path(a) / "memory"), MemoryBank.load(Path(b) / "memory")
    assert len(bank_a) > 0 and bank_a.meta == bank_b.meta
    assert torch.equal(bank_a.keys, bank_b.keys) and torch.equal(bank_a.values, bank_b.values)


@pytest.fixture(scope="module")
def uninterrupted(four_tasks_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = _popen(_args(four_tasks_file, out, "full"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return out / "full"


def _resume(run_dir):
    proc = _popen(["--resume", str(run_dir)])
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return out


def test_sigkill_mid_step_then_resume_matches_an_uninterrupted_run(four_tasks_file, tmp_path, uninterrupted):
    proc = _popen(_args(four_tasks_file, tmp_path, "cut"))
    code, _, _ = _stop_after(proc, tmp_path / "cut", 45, signal.SIGKILL)  # epoch 2, memory filling
    assert code == -signal.SIGKILL
    ckpt = find_checkpoint(tmp_path / "cut")
    assert 40 <= int(ckpt.name.split("_")[1]) <= 45 and len(MemoryBank.load(ckpt)) > 0
    out = _resume(tmp_path / "cut")
    assert f"resumed from {ckpt}" in out
    _assert_same_run(uninterrupted, tmp_path / "cut")


def test_sigterm_writes_a_checkpoint_at_the_step_then_resume_matches(four_tasks_file, tmp_path, uninterrupted):
    proc = _popen(_args(four_tasks_file, tmp_path, "term"))
    code, _, err = _stop_after(proc, tmp_path / "term", 38, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err[-2000:]
    n = len(_records(tmp_path / "term", "step"))
    assert err.strip().splitlines()[-1] == (f"stopped by SIGTERM after step {n}: checkpoint step_{n:07d} "
                                            f"written; continue with --resume {tmp_path / 'term'}")
    assert find_checkpoint(tmp_path / "term").name == f"step_{n:07d}"
    _resume(tmp_path / "term")
    _assert_same_run(uninterrupted, tmp_path / "term")


def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_twice_stops_at_once(four_tasks_file, tmp_path):
    def interrupt_at(step, times):
        def cb(result):
            if result.step + 1 == step:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)
        return cb

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingStopped) as stopped:
        train(_cfg(four_tasks_file, tmp_path, "once"), callbacks=[interrupt_at(3, 1)])
    assert stopped.value.exit_code == 130
    assert find_checkpoint(tmp_path / "once").name == "step_0000003"
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are given back
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(four_tasks_file, tmp_path, "twice"), callbacks=[interrupt_at(3, 2)])
    assert find_checkpoint(tmp_path / "twice").name == "step_0000000"  # only the starting one


def test_a_second_ctrl_c_through_the_command_line_is_one_line(monkeypatch, capsys):
    import arc_efe.training.run

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(arc_efe.training.run, "train", interrupted)
    assert train_main(["--epochs", "1"]) == 130
    assert capsys.readouterr().err.strip() == ("interrupted at once (second Ctrl-C): no new checkpoint; "
                                               "--resume RUN_DIR continues from the last one")


def test_save_every_steps_and_keep_checkpoints(four_tasks_file, tmp_path):
    train(_cfg(four_tasks_file, tmp_path, "keep", epochs=2, max_batches=5, save_every_steps=2,
               keep_checkpoints=2))
    ckpts = sorted(p.name for p in (tmp_path / "keep" / "checkpoints").glob("step_*"))
    assert ckpts == ["step_0000008", "step_0000010"]  # 2, 4, 5 (epoch), 6, 8, 10 (epoch), 2 kept
    assert (tmp_path / "keep" / "checkpoints" / "latest").read_text().strip() == "step_0000010"
    for name in ckpts:
        verify_checkpoint(tmp_path / "keep" / "checkpoints" / name)
    with pytest.raises(ArcEfeError, match="--keep-checkpoints must be >= 1"):
        _cfg(four_tasks_file, tmp_path, "x", keep_checkpoints=0)


@pytest.fixture
def three_checkpoints(four_tasks_file, tmp_path):
    train(_cfg(four_tasks_file, tmp_path, "dmg", max_batches=6, save_every_steps=2))
    return tmp_path / "dmg"


def _damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # flip one bit in the middle
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how,file,said", [
    ("truncate", "model.safetensors", "bytes, the manifest says"),
    ("flip", "model.safetensors", "contents differ from the manifest's checksum (corrupted)"),
    ("flip", "optimizer.pt", "contents differ from the manifest's checksum (corrupted)"),
    ("truncate", "memory.json", "bytes, the manifest says"),
])
def test_damaged_checkpoint_is_detected_and_the_previous_one_offered(three_checkpoints, capsys, how, file, said):
    run = three_checkpoints
    latest = run / "checkpoints" / "step_0000006"
    _damage(latest / file, how)
    with pytest.raises(CheckpointError) as err:
        find_checkpoint(run)
    msg = str(err.value)
    assert msg.startswith(f"{latest / file}: ") and said in msg
    assert msg.endswith(f"the previous checkpoint step_0000004 is intact: continue from it with "
                        f"--resume {run} --resume-checkpoint step_0000004")
    # the command line: one line, exit 2; then resuming from the offered checkpoint works
    assert train_main(["--resume", str(run)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {msg}"
    assert train_main(["--resume", str(run), "--resume-checkpoint", "step_0000004"]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "set aside the later checkpoint step_0000006 (now abandoned_step_0000006)" in out
    assert find_checkpoint(run).name == "step_0000006"  # written again by the resumed run
    assert (run / "checkpoints" / "abandoned_step_0000006" / file).exists()  # the damaged one, kept aside
    assert [r["step"] for r in _records(run, "step")] == [1, 2, 3, 4, 5, 6]


def test_a_save_that_fails_half_way_leaves_the_previous_one(three_checkpoints, monkeypatch):
    """A save that dies half way: the disk fills while writing the optimizer state, which torch
    reports as a RuntimeError (as it does on a real full disk), not as an OSError."""
    run = three_checkpoints
    before = {p.name for p in (run / "checkpoints").iterdir()}
    real_save = torch.save

    def full_disk(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)
        Path(f).write_bytes(Path(f).read_bytes()[:100])
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2723328 vs 2723216")

    class NoSpace:
        free = 0

    monkeypatch.setattr(ckmod.torch, "save", full_disk)
    monkeypatch.setattr(ckmod.shutil, "disk_usage", lambda path: NoSpace)
    r = setup(TrainConfig.from_dict(json.loads((run / "config.json").read_text())), resume=run)
    r.pos.step += 1
    with pytest.raises(ArcEfeError) as err:
        ckmod.save_checkpoint(r.run_dir, r.policy.backbone, r.optimizer, r.scheduler, r.pos, {}, r.solver2, r.bank)
    assert str(err.value) == (f"{run}: no space left on the device while writing {run / 'checkpoints' / 'step_0000007'}; "
                              f"the last good checkpoint step_0000006 is intact: free space, then continue "
                              f"with --resume {run}")
    assert {p.name for p in (run / "checkpoints").iterdir()} == before  # no partial folder left
    verify_checkpoint(find_checkpoint(run))


def test_a_full_disk_during_training_is_one_line_and_keeps_the_last_checkpoint(four_tasks_file, tmp_path,
                                                                              monkeypatch, capsys):
    real = ckmod.save_file
    calls = {"n": 0}

    def fills_up(tensors, path, *a, **kw):
        calls["n"] += 1
        if calls["n"] > 4:  # step 0's and step 2's RNG and Solver2 files fit; step 4's do not
            # what safetensors really raises on a full disk
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, path, *a, **kw)

    monkeypatch.setattr(ckmod, "save_file", fills_up)
    args = _args(four_tasks_file, tmp_path, "disk", epochs=1, batches=6, every=2)
    assert train_main(args) == 2
    # the progress bar shares standard error: the error is the one line that starts a new line
    err = [line for line in capsys.readouterr().err.split("\n") if line.startswith("error")]
    assert len(err) == 1 and "no space left on the device while writing" in err[0]
    assert err[0].endswith(f"the last good checkpoint step_0000002 is intact: free space, then continue with "
                           f"--resume {tmp_path / 'disk'}")
    verify_checkpoint(find_checkpoint(tmp_path / "disk"))
    assert not list((tmp_path / "disk" / "checkpoints").glob(".*.tmp"))


# --- the NaN/inf guard ----------------------------------------------------------------------

class NaNAt(torch.nn.Module):
    """Wraps the loss: at the chosen (1-based) steps the total becomes NaN, and so do its gradients."""

    def __init__(self, inner, bad_steps):
        super().__init__()
        self.inner, self.bad_steps, self.step = inner, set(bad_steps), 1

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        if self.step in self.bad_steps:
            out.total = out.total * float("nan")
        return out


def _guarded_run(data, tmp_path, name, bad_steps, **kw):
    run = setup(_cfg(data, tmp_path, name, **kw))
    run.loss_fn = NaNAt(run.loss_fn, bad_steps)
    weights, adds = {}, {}

    def snapshot(result):  # after each step: the weights and the bank's size
        weights[result.step + 1] = {k: v.clone() for k, v in run.policy.backbone.state_dict().items()}
        adds[result.step + 1] = len(run.bank) if run.bank is not None else 0
        run.loss_fn.step = result.step + 2

    weights[0] = {k: v.clone() for k, v in run.policy.backbone.state_dict().items()}
    return run, weights, adds, snapshot


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_nan_steps_are_skipped_counted_and_never_reach_the_weights(four_tasks_file, tmp_path):
    run, weights, _, snapshot = _guarded_run(four_tasks_file, tmp_path, "nan", {3, 5}, max_batches=6)
    run.fit(callbacks=[snapshot])
    for s in (3, 5):
        assert _same(weights[s - 1], weights[s]), f"step {s} changed the weights"
    for s in (2, 4, 6):
        assert not _same(weights[s - 1], weights[s]), f"good step {s} did not train"
    steps = _records(run.run_dir, "step")
    assert [r["loss"] for r in steps][2] == "nan" and [r["loss"] for r in steps][4] == "nan"
    epoch = _records(run.run_dir, "epoch")[0]
    assert epoch["nan_skipped"] == 2 and epoch["rollbacks"] == 0
    saved = read_safetensors(find_checkpoint(run.run_dir) / "model.safetensors", "weights")
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_nan_steps_never_reach_the_memory_bank(four_tasks_file, tmp_path):
    """With a lenient success rule every query of a step counts as solved; the NaN is injected
    into the loss only, so the queries' own figures are finite: only the guard stops the writes."""
    run, _, adds, snapshot = _guarded_run(four_tasks_file, tmp_path, "nanmem", {1, 2, 3}, max_batches=4,
                                          success_threshold="2.0", nan_rollback=0)
    run.fit(callbacks=[snapshot])
    assert adds[1] == adds[2] == adds[3] == 0
    assert adds[4] > 0, "the first good step stores its solved queries"


def test_rollback_after_n_bad_steps_restores_the_checkpoint_and_lowers_the_lr(four_tasks_file, tmp_path, capsys):
    from arc_efe.reporting.diagnosis import diagnose
    from arc_efe.reporting.runlog import load_run

    from arc_efe.training.run import _lr_lambda

    # steps 5, 6, 7 bad: rollback after 7 to checkpoint 3; step 8 bad too, so the weights seen
    # after it are the restored ones
    run, weights, _, snapshot = _guarded_run(four_tasks_file, tmp_path, "roll", {5, 6, 7, 8}, max_batches=9,
                                             save_every_steps=3, nan_rollback=3)
    run.fit(callbacks=[snapshot])
    assert not _same(weights[3], weights[4]) and _same(weights[4], weights[7])
    assert _same(weights[8], weights[3]), "the rollback did not restore checkpoint step 3"
    assert not _same(weights[9], weights[8])  # and training goes on
    rollback = _records(run.run_dir, "rollback")
    assert rollback == [{"kind": "rollback", "step": 7, "bad_steps": 3, "checkpoint": "step_0000003",
                         "lr_scale": 0.5}]
    steps = _records(run.run_dir, "step")
    schedule = _lr_lambda(2, 9)
    assert steps[6]["lr"] == pytest.approx(3e-3 * schedule(6))  # step 7, before the rollback
    assert steps[7]["lr"] == pytest.approx(0.5 * 3e-3 * schedule(7))  # step 8: half the schedule
    out = capsys.readouterr().out
    assert "3 steps in a row had a NaN or infinite loss or gradient (up to step 7); went back to checkpoint " \
           "step_0000003 and lowered the learning rate to x0.5" in out
    epoch = _records(run.run_dir, "epoch")[0]
    assert epoch["nan_skipped"] == 4 and epoch["rollbacks"] == 1 and epoch["lr_scale"] == 0.5
    config, records = load_run(run.run_dir)
    titles = [f.title for f in diagnose(config, records)]
    assert "training rolled back to a checkpoint" in titles


def test_rollback_goes_back_before_the_bad_steps_across_an_epoch_end(four_tasks_file, tmp_path, capsys):
    """Bad steps 5-8 span the end of epoch 1 (step 6): its checkpoint would hold the weights the
    bad steps started from, so it is not written, and the rollback goes to step 3."""
    run, weights, _, snapshot = _guarded_run(four_tasks_file, tmp_path, "span", {5, 6, 7, 8}, epochs=2,
                                             max_batches=6, save_every_steps=3, nan_rollback=3)
    run.fit(callbacks=[snapshot])
    assert [r["checkpoint"] for r in _records(run.run_dir, "rollback")] == ["step_0000003"]
    assert "not writing the epoch's checkpoint: 2 bad step(s) in a row so far" in capsys.readouterr().out
    assert _same(weights[8], weights[3])


def test_too_many_rollbacks_stop_with_one_line(four_tasks_file, tmp_path):
    run, _, _, snapshot = _guarded_run(four_tasks_file, tmp_path, "hopeless", set(range(1, 99)), max_batches=9,
                                       nan_rollback=2, max_rollbacks=2)
    with pytest.raises(ArcEfeError, match=r"still NaN or infinite at step 6 after 2 rollback\(s\) "
                                          r"\(learning rate now x0.25\); stopping"):
        run.fit(callbacks=[snapshot])


def test_non_finite_weights_are_never_written(four_tasks_file, tmp_path, capsys):
    run = setup(_cfg(four_tasks_file, tmp_path, "nanw"))
    with torch.no_grad():
        next(run.policy.backbone.parameters())[0, 0] = float("inf")
    assert run.checkpoint() is None
    assert "checkpoint not written" in capsys.readouterr().err
    assert not (tmp_path / "nanw" / "checkpoints").exists()


# --- nothing unsafe is executed on load -----------------------------------------------------

class Payload:
    """Unpickling this creates the marker file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _forge(ckpt, name, writer):
    """Replace a file of a checkpoint and rewrite the manifest to match (a deliberate forgery)."""
    writer(ckpt / name)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"][name] = ckmod._describe(ckpt / name)
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def test_a_pickle_payload_in_a_checkpoint_is_refused_and_never_runs(three_checkpoints, capsys):
    run = three_checkpoints
    ckpt = run / "checkpoints" / "step_0000006"
    marker = run.parent / "payload_ran"
    state = torch.load(ckpt / "optimizer.pt", weights_only=True)
    state["scheduler"]["evil"] = Payload(marker)
    _forge(ckpt, "optimizer.pt", lambda p: torch.save(state, p))
    verify_checkpoint(ckpt)  # the forgery passes the manifest: the loader itself must refuse it
    with pytest.raises(ArcEfeError, match="refused to load the optimizer state: it holds objects other than"):
        load_plain(ckpt / "optimizer.pt", "the optimizer state")
    assert train_main(["--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {ckpt / 'optimizer.pt'}: refused to load")
    assert not marker.exists()
    # sanity: the same file loaded the unsafe way does run the payload
    torch.load(ckpt / "optimizer.pt", weights_only=False)
    assert marker.exists()


def test_pickled_weights_in_place_of_safetensors_are_refused(three_checkpoints, capsys):
    from arc_efe.cli import main

    run = three_checkpoints
    ckpt = run / "checkpoints" / "step_0000006"
    marker = run.parent / "payload_ran"
    _forge(ckpt, "model.safetensors", lambda p: p.write_bytes(pickle.dumps(Payload(marker))))
    _forge(ckpt, "memory.safetensors", lambda p: p.write_bytes(pickle.dumps(Payload(marker))))
    assert main(["evaluate", "--checkpoint", str(run), "--data", "synthetic/flip_lr:3", "--max-tasks", "1",
                 "--device", "cpu", "--output-dir", str(run.parent / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors: not a safetensors checkpoint" in err[0]
    with pytest.raises(ArcEfeError, match="memory.safetensors: not a safetensors memory bank"):
        MemoryBank.load(ckpt)
    assert not marker.exists()


def test_a_partial_folder_of_a_killed_save_is_cleaned_on_resume(three_checkpoints, capsys):
    run = three_checkpoints
    partial = run / "checkpoints" / ".step_0000008.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    assert train_main(["--resume", str(run), "--epochs", "2", "--keep-checkpoints", "5", "--agent-lr", "0.5"]) == 0
    assert not partial.exists()
    assert "ignored: --agent-lr" in capsys.readouterr().err
    assert [p.name for p in sorted((run / "checkpoints").glob("step_*"))] == [
        "step_0000004", "step_0000006", "step_0000008", "step_0000010", "step_0000012"]


def test_a_run_killed_before_its_first_checkpoint_starts_again_on_resume(four_tasks_file, tmp_path, capsys):
    class Crash(Exception):
        pass

    def crash_at_step_3(result):
        if result.step + 1 == 3:
            raise Crash

    with pytest.raises(Crash):
        train(_cfg(four_tasks_file, tmp_path, "early"), callbacks=[crash_at_step_3])
    # as if killed while writing the starting checkpoint: only a partial folder
    ckpts = tmp_path / "early" / "checkpoints"
    shutil.rmtree(ckpts)
    (ckpts / ".step_0000000.tmp").mkdir(parents=True)
    (tmp_path / "early" / "metrics.jsonl").unlink()  # killed before even the first step line
    assert train_main(["--resume", str(tmp_path / "early")]) == 0
    assert not (ckpts / ".step_0000000.tmp").exists()
    assert "has no checkpoint yet (it stopped before the first): starting it again" in capsys.readouterr().out
    train(_cfg(four_tasks_file, tmp_path, "fresh"))
    early, fresh = _records(tmp_path / "early", "step"), _records(tmp_path / "fresh", "step")
    assert [r["step"] for r in early] == list(range(1, 9))
    assert _without(early, "tokens_per_s") == _without(fresh, "tokens_per_s")


def test_a_missing_latest_pointer_falls_back_to_the_newest_good_checkpoint(three_checkpoints):
    run = three_checkpoints
    (run / "checkpoints" / "latest").unlink()
    assert find_checkpoint(run).name == "step_0000006"
    _damage(run / "checkpoints" / "step_0000006" / "rng.safetensors", "flip")
    assert find_checkpoint(run).name == "step_0000004"
    # a folder half deleted (manifest gone, meta.json left) is not taken for an old-style checkpoint
    (run / "checkpoints" / "step_0000004" / "manifest.json").unlink()
    (run / "checkpoints" / "step_0000004" / "model.safetensors").unlink()
    assert find_checkpoint(run).name == "step_0000002"
    with pytest.raises(CheckpointError, match="not a complete checkpoint .no manifest.json, no model.safetensors"):
        verify_checkpoint(run / "checkpoints" / "step_0000004")
