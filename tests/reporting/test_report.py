"""`arc-efe report`: the HTML run page, its grids and escaping, and the page in a real browser."""

import json
import re
import shutil

import pytest

from arc_efe.cli import main
from arc_efe.data.synthetic import SyntheticSource
from arc_efe.errors import ArcEfeError
from arc_efe.reporting.display import PALETTE
from arc_efe.reporting.grid_svg import as_grid, cell_size, grid_svg, wrong_cells
from arc_efe.reporting.report import EvalTask, TaskLookup, choose_tasks, find_eval, read_eval, write_report
from arc_efe.training.epoch_report import report_after_training

from conftest import small_task
from test_diagnosis import HEALTHY_CONFIG, healthy_run

SCRIPT_ID = "<script>alert(1)</script>"
ARC_COLOURS = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
               "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25"]


def recoloured(task, k):
    """The right answer of test k of a conftest.small_task (recolour 1 -> 2)."""
    return [[2 if v == 1 else v for v in row] for row in task["test"][k]["input"]]


def eval_line(task_id, source, attempts, correct, **more):
    return {"task_id": task_id, "source": source, "solutions": None, "seconds": 0.5,
            "sizes": [[2, 3]] * len(attempts), "candidates": [2] * len(attempts),
            "attempts": attempts, "correct": correct, "scores": [0.25] * len(attempts), **more}


def make_run(root):
    """A run folder written by hand: healthy metrics, and an evaluation of four tasks from a
    small task file (one right, one partly wrong, one with a hostile id, one not loadable)."""
    tasks = {"t-right": small_task(0), "t-wrong": small_task(1, n_test=2), SCRIPT_ID: small_task(2)}
    (root / "data").mkdir(parents=True)
    source = root / "data" / "tasks.json"
    source.write_text(json.dumps(tasks))
    run = root / "run"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**HEALTHY_CONFIG, "note": "<img src=x onerror=alert(2)>"}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in healthy_run()))
    right = recoloured(tasks["t-right"], 0)
    one_off = recoloured(tasks["t-wrong"], 0)
    one_off[0][0] = 5
    lines = [
        eval_line("t-right", str(source), [{"attempt_1": right, "attempt_2": right}], [True]),
        eval_line("t-wrong", str(source), [{"attempt_1": one_off, "attempt_2": [[1]]},
                                           {"attempt_1": recoloured(tasks["t-wrong"], 1),
                                            "attempt_2": [[0]]}], [False, True]),
        eval_line(SCRIPT_ID, str(source), [{"attempt_1": [[3]], "attempt_2": [[4]]}], [False]),
        eval_line("t-lost", str(root / "gone.json"), [{"attempt_1": [[1, 2]], "attempt_2": "junk"}], None),
    ]
    (run / "eval" / "eval.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(run folder, path of its report.html, the page's text)."""
    run = make_run(tmp_path_factory.mktemp("report"))
    path = write_report(run)
    return run, path, path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- grids

def test_palette_is_the_standard_arc_palette():
    assert list(PALETTE) == ARC_COLOURS


def test_grid_svg_draws_one_cell_per_value_in_its_colour():
    grid = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    svg = grid_svg(grid, label="g")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert re.findall(r'class="cell"[^>]*fill="(#[0-9A-F]{6})"', svg) == ARC_COLOURS
    assert svg.count('class="wrong"') == 0
    s = cell_size(2, 5)
    assert f'width="{5 * s}" height="{2 * s}"' in svg


def test_wrong_cells_are_crossed_out():
    expected = [[1, 1, 1], [2, 2, 2]]
    attempt = [[1, 0, 1], [2, 2, 7]]
    assert wrong_cells(attempt, expected) == [(0, 1), (1, 2)]
    svg = grid_svg(attempt, expected)
    assert svg.count('<g class="wrong">') == 2 and svg.count('class="cell"') == 6
    assert grid_svg(expected, expected).count('class="wrong"') == 0


def test_a_different_shape_marks_no_cell():
    assert wrong_cells([[1, 2]], [[1], [2]]) is None
    assert grid_svg([[1, 2]], [[1], [2]]).count('class="wrong"') == 0


@pytest.mark.parametrize("bad", [None, [], [[]], [[1, 2], [3]], [[10]], [[-1]], [[True]], [[1.5]], "x", [1, 2]])
def test_not_a_grid_is_a_note_not_an_error(bad):
    assert as_grid(bad) is None
    assert grid_svg(bad, label="<b>") == '<p class="bad-grid">&lt;b&gt;: not a grid of colours 0..9</p>'


def test_cells_shrink_for_large_grids_within_bounds():
    assert cell_size(1, 1) == 20 and cell_size(30, 30) == 6 and cell_size(30, 2) == 6
    assert cell_size(200, 200) == 4


def test_grid_label_is_escaped():
    svg = grid_svg([[1]], label='"><script>x</script>')
    assert "<script" not in svg and "&quot;&gt;&lt;script&gt;" in svg


# ---------------------------------------------------------------- the evaluation

def test_read_eval_tolerates_missing_keys_and_a_cut_off_last_line(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps({"task_id": "a", "attempts": [{"attempt_1": [[1]]}]}) + "\n"
                    + json.dumps({"seconds": "slow", "correct": [True, False]}) + "\n" + '{"task_id": "c", "att')
    a, b = read_eval(path)
    assert (a.task_id, a.source, a.correct, a.score, a.seconds) == ("a", None, None, None, None)
    assert b.task_id == "(line 2, no task_id)" and b.score == 0.5 and b.seconds is None


def test_read_eval_names_a_corrupt_line(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"task_id": "a"}\n{oops\n{"task_id": "b"}\n')
    with pytest.raises(ArcEfeError, match=r"eval\.jsonl: line 2 is not valid JSON"):
        read_eval(path)


def test_find_eval(tmp_path):
    assert find_eval(tmp_path, None) is None
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval.jsonl").write_text("")
    assert find_eval(tmp_path, None) == tmp_path / "eval" / "eval.jsonl"
    assert find_eval(tmp_path, tmp_path / "eval") == tmp_path / "eval" / "eval.jsonl"
    with pytest.raises(ArcEfeError, match="nowhere.jsonl: no such file"):
        find_eval(tmp_path, tmp_path / "nowhere.jsonl")


def test_wrong_tasks_are_chosen_first():
    tasks = [EvalTask("right", correct=[True]), EvalTask("unknown"), EvalTask("half", correct=[True, False]),
             EvalTask("zero", correct=[False]), EvalTask("right2", correct=[True])]
    assert [tasks[i].task_id for i in choose_tasks(tasks, 10)] == ["zero", "half", "unknown", "right", "right2"]
    assert [tasks[i].task_id for i in choose_tasks(tasks, 2)] == ["zero", "half"]
    assert choose_tasks(tasks, 0) == []


def test_generated_tasks_are_found_by_their_id():
    task = SyntheticSource("synthetic", 3).task(41)
    attempts = [{}] * len(task.test)
    found, why = TaskLookup().find(EvalTask(task.id, source="synthetic", attempts=attempts))
    assert why == "" and found.id == task.id
    found, why = TaskLookup().find(EvalTask("no-such-id", source="synthetic"))
    assert found is None and "not a task id" in why


def test_a_task_with_other_test_inputs_is_not_drawn_as_the_evaluated_one(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"a": small_task(0)}))
    rec = EvalTask("a", source=str(tmp_path / "t.json"), sizes=[[5, 5]], attempts=[{}])
    found, why = TaskLookup().find(rec)
    assert found is None and "does not match" in why


# ---------------------------------------------------------------- the page

def test_page_holds_curves_diagnosis_table_and_grids(report):
    run, path, page = report
    assert path == run / "report.html"
    assert page.count('<img src="data:image/png;base64,') == 6
    assert "No problems found." in page and "loss is falling" in page
    assert "4 tasks; mean score" in page
    assert page.count('<article class="task"') == 4
    order = ["task &lt;script&gt;", "task t-wrong", "task t-lost", "task t-right"]  # 0%, 50%, unknown, 100%
    assert [page.index(f"<h3>{t}") for t in order] == sorted(page.index(f"<h3>{t}") for t in order)
    assert "1 cell wrong</span>" in page and "wrong shape</span> (1x1, expected 2x3)" in page
    assert page.count('<g class="wrong">') == 1
    assert "The task could not be loaded" in page and "gone.json not found" in page
    assert "Demonstrations (3)" in page and "2 candidates, chosen candidate's score 0.25" in page


def test_everything_from_files_is_escaped(report):
    _, _, page = report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script" not in page.lower() and "onerror=alert" not in page.replace("&lt;img src=x onerror", "")


def test_page_needs_no_network(report):
    _, _, page = report
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_without_an_evaluation_the_page_says_so(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"memory": False}))
    (run / "metrics.jsonl").write_text('{"kind": "step", "step": 1, "loss": "nan"}\n{"kind": "st')
    page = write_report(run).read_text()
    assert "No evaluation found" in page and '<article class="task"' not in page
    assert "no epoch finished yet, so no accuracy" in page and "memory bank: off" in page
    assert "loss became NaN or infinite" in page


def test_report_command(report, tmp_path, capsys):
    run, _, _ = report
    out = tmp_path / "one.html"
    assert main(["report", str(run), "--output", str(out), "--max-tasks", "1"]) == 0
    assert capsys.readouterr().out == f"report: {out}\n"
    page = out.read_text()
    assert page.count('<article class="task"') == 1 and "<h3>task &lt;script&gt;" in page
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(run), "--eval", str(tmp_path / "missing.jsonl")]) == 2
    assert f"error: {tmp_path / 'missing.jsonl'}: no such file" in capsys.readouterr().err
    assert main(["report", str(run), "--eval", str(tmp_path)]) == 2  # a folder without eval.jsonl
    assert f"error: {tmp_path / 'eval.jsonl'}: no such file" in capsys.readouterr().err


def test_training_prints_the_report_path_and_survives_a_failure(report, monkeypatch, capsys):
    run, _, _ = report
    assert report_after_training(run) == run / "report.html"
    assert capsys.readouterr().out == f"report: {run / 'report.html'}\n"

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("arc_efe.reporting.report.write_report", broken)
    assert report_after_training(run) is None
    out, err = capsys.readouterr()
    assert out == "" and "warning: could not write the run report (RuntimeError: disk full)" in err
    assert f"arc-efe report {run}" in err


# ---------------------------------------------------------------- in a real browser

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def browser():
    exe = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    if exe is None:
        pytest.skip(f"no Chromium on PATH (looked for {', '.join(CHROMIUM)}); `make test` installs "
                    "Debian's chromium when it runs as root with apt-get")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe)
        yield b
        b.close()


def test_report_in_a_browser(report, browser, tmp_path):
    _, path, _ = report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, dialogs, requests = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())

    plots = page.locator("#curves img")
    assert plots.count() == 6
    for i in range(6):
        box = plots.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    grid = page.locator("svg.grid").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0
    assert page.locator("svg.grid g.wrong").count() == 1

    hostile = page.locator("table a", has_text=SCRIPT_ID)
    assert hostile.count() == 1 and hostile.is_visible() and hostile.inner_text() == SCRIPT_ID
    assert page.locator("script").count() == 0 and dialogs == []
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()
