"""`arc-efe diagnose RUN_DIR` on run folders written by hand: one per finding, plus bad folders."""

import json
import subprocess
import sys

import pytest

from arc_efe.cli import main

from test_diagnosis import HEALTHY_CONFIG, comps, epoch_line, healthy_run, step_lines


def write_run(path, config, records, tail=""):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def diagnose_out(capsys, run_dir):
    code = main(["diagnose", str(run_dir)])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    return out


def stuck_run():
    return {"mode": "frozen", "agent_lr": 1e-5, "memory": False}, step_lines([5.1, 5.12, 5.08, 5.1] * 6)


def negative_run():
    return HEALTHY_CONFIG, step_lines([5.0 - 0.1 * i for i in range(12)],
                                      components=comps(0.7, consistency=-0.3))


def no_adds_run():
    recs = step_lines([5.0 - 0.1 * i for i in range(10)])
    return {"memory": True, "agent_lr": 1e-4}, recs + [epoch_line(1, 4.5, train_acc=0.0, val_acc=0.0,
                                                                    adds=0, queries=2725)]


def nan_run():
    recs = step_lines([5.0 - 0.1 * i for i in range(12)])
    recs[6]["loss"] = "nan"   # as the training log writes it
    return HEALTHY_CONFIG, recs


@pytest.mark.parametrize("make_run, expected", [
    (stuck_run, ["PROBLEM  loss is stuck", "raise --agent-lr (now 1e-05)", "--no-freeze-qwen",
                 "WARNING  learning rate 1e-05 is low", "WARNING  the Qwen backbone is frozen"]),
    (negative_run, ["PROBLEM  the consistency part of the loss is negative", "lowest -0.3"]),
    (no_adds_run, ["WARNING  memory bank received 0 adds out of 2725 queries", "easier subset"]),
    (nan_run, ["PROBLEM  loss became NaN or infinite", "first at step 7", "lower the learning rate"]),
], ids=["stuck", "negative", "no-memory-adds", "nan"])
def test_each_problem_is_printed_with_numbers_and_advice(tmp_path, capsys, make_run, expected):
    config, records = make_run()
    out = diagnose_out(capsys, write_run(tmp_path / "run", config, records))
    assert out.startswith(f"Diagnosis of {tmp_path / 'run'}\n")
    for text in expected:
        assert text in " ".join(out.split("\n       ")), text
    assert "No problems found." not in out


def test_healthy_run_prints_no_alarm(tmp_path, capsys):
    out = diagnose_out(capsys, write_run(tmp_path / "run", HEALTHY_CONFIG, healthy_run()))
    assert "No problems found." in out and "PROBLEM" not in out and "WARNING" not in out
    for text in ("GOOD     loss is falling", "GOOD     memory bank is filling",
                 "GOOD     validation accuracy is rising", "GOOD     speed ~"):
        assert text in out


def test_problems_come_before_warnings_and_good_signs(tmp_path, capsys):
    config, records = stuck_run()
    out = diagnose_out(capsys, write_run(tmp_path / "run", config, records))
    assert out.index("PROBLEM") < out.index("WARNING") < out.index("GOOD")


def test_crashed_run_with_a_cut_off_last_line(tmp_path, capsys):
    run = write_run(tmp_path / "run", HEALTHY_CONFIG, healthy_run(), tail='{"kind": "step", "step": 31, "lo')
    assert "GOOD     loss is falling" in diagnose_out(capsys, run)


def test_running_run_without_steps_yet(tmp_path, capsys):
    out = diagnose_out(capsys, write_run(tmp_path / "run", HEALTHY_CONFIG, []))
    assert "WARNING  no steps logged yet" in out


@pytest.mark.parametrize("damage, named", [
    (lambda run: None, "no such run folder"),
    (lambda run: write_run(run, {}, []) and (run / "config.json").unlink(), "config.json: no such file"),
    (lambda run: write_run(run, {}, []) and (run / "metrics.jsonl").unlink(), "metrics.jsonl: no such file"),
    (lambda run: write_run(run, {}, [], tail="{oops\n" + json.dumps(step_lines([5.0])[0]) + "\n"),
     "metrics.jsonl: line 1 is not valid JSON"),
    (lambda run: write_run(run, {}, []) and (run / "config.json").write_text("{"), "config.json: not valid JSON"),
], ids=["no-folder", "no-config", "no-metrics", "corrupt-line", "corrupt-config"])
def test_bad_run_folder_is_one_line_and_status_2(tmp_path, capsys, damage, named):
    run = tmp_path / "run"
    damage(run)
    assert main(["diagnose", str(run)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {run}") and named in err


def test_console_command_exit_status(tmp_path):
    """As a user runs it: the real entry point in a subprocess."""
    r = subprocess.run([sys.executable, "-m", "arc_efe", "diagnose", str(tmp_path / "missing")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"error: {tmp_path / 'missing'}: no such run folder "
                                "(training prints it last, as 'run folder: ...')")
