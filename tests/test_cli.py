import json
import subprocess
import sys


from arc_efe.cli import main

from conftest import small_task


def run_cli(*args):
    """Run the real console entry point in a subprocess (exit status and streams as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "arc_efe", *map(str, args)], capture_output=True, text=True)


def test_validate_embedded_evaluation_counts(capsys):
    assert main(["data", "validate", "arc-agi-1/evaluation"]) == 0
    out = capsys.readouterr().out
    assert "arc-agi-1/evaluation: 400 tasks valid" in out
    assert "test outputs: 419 known" in out
    assert main(["data", "validate", "arc-agi-2/evaluation"]) == 0
    assert "arc-agi-2/evaluation: 120 tasks valid" in capsys.readouterr().out


def test_bad_input_exits_2_with_one_line(write_json):
    t = small_task(0)
    t["train"][2]["output"] = [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3, 4]]
    path = write_json("training.json", {"007bbfb7": t})
    r = run_cli("data", "validate", path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {path}: task 007bbfb7, train[2].output row 3 has 4 cells, row 0 has 3"]
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_unknown_source_exits_2(capsys):
    assert main(["data", "validate", "nowhere.json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere.json not found" in err and "arc-agi-1/training" in err


def test_validate_skip_invalid_reports_what_was_skipped(write_json, capsys):
    bad = small_task(0)
    bad["test"][0]["input"] = [[0] * 31]
    path = write_json("m.json", {"good": small_task(0), "bad": bad})
    assert main(["data", "validate", str(path), "--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "1 tasks valid" in out and "skipped 1 invalid tasks" in out and "31 cells" in out


def test_show_draws_a_task(capsys):
    assert main(["data", "show", "arc-agi-1/training", "007bbfb7", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "task 007bbfb7: 5 demonstrations" in out and "output 9x9" in out
    assert main(["data", "show", "arc-agi-1/training", "007bbfb7", "--color"]) == 0
    assert "\x1b[48;2;" in capsys.readouterr().out
    assert main(["data", "show", "arc-agi-1/training", "nope"]) == 2


def test_export_kaggle_then_score_roundtrip(tmp_path, capsys):
    ch = tmp_path / "ev_challenges.json"
    assert main(["data", "export", "arc-agi-1/evaluation", str(ch), "--kaggle"]) == 0
    raw = json.loads(ch.read_text())
    assert len(raw) == 400 and all("output" not in p for t in raw.values() for p in t["test"])
    sub = {tid: [{"attempt_1": [[0]], "attempt_2": [[0]]} for _ in t["test"]] for tid, t in raw.items()}
    sols = json.loads((tmp_path / "ev_solutions.json").read_text())
    first = next(iter(raw))
    sub[first] = [{"attempt_1": [[0]], "attempt_2": g} for g in sols[first]]
    (tmp_path / "submission.json").write_text(json.dumps(sub))
    capsys.readouterr()
    assert main(["score", str(tmp_path / "submission.json"), "--data", str(ch), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "score 0.0025 (0.25%) over 400 tasks: 1 task fully solved" in out


def test_score_reports_malformed_submission_without_crash(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps({"007bbfb7": [{"attempt_1": [[1, 2], [3]]}]}))
    assert main(["score", str(tmp_path / "s.json"), "--data", "arc-agi-1/training"]) == 0
    out = capsys.readouterr().out
    assert "007bbfb7" in out and "attempt_2 missing" in out and "row 1 has 1 cells" in out
    assert "over 400 tasks" in out
    (tmp_path / "bad.json").write_text("{")
    assert main(["score", str(tmp_path / "bad.json"), "--data", "arc-agi-1/training"]) == 2
