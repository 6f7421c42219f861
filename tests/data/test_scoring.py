import pytest

from arc_efe.data.scoring import make_entry, read_submission, score_submission, write_submission
from arc_efe.data.tasks import Pair, Task, make_grid
from arc_efe.errors import SubmissionError

A = [[1, 2], [3, 4]]
B = [[5]]
C = [[0, 0, 0]]


def _task(tid, *answers):
    demo = Pair(make_grid([[1]]), make_grid([[1]]))
    return Task(tid, (demo,), tuple(Pair(make_grid([[0]]), make_grid(a)) for a in answers))


TASKS = [_task("one", A), _task("two", A, B), _task("three", B, C, A)]


def test_perfect_submission_scores_one():
    sub = {"one": [{"attempt_1": A, "attempt_2": B}],
           "two": [{"attempt_1": C, "attempt_2": A}, {"attempt_1": B, "attempt_2": B}],
           "three": [{"attempt_1": B, "attempt_2": C}, {"attempt_1": A, "attempt_2": C},
                     {"attempt_1": A, "attempt_2": A}]}
    r = score_submission(sub, TASKS)
    assert r.score == 1.0 and r.tasks_solved == 3 and not r.problems
    assert all(not t.problems for t in r.tasks)


def test_multi_output_tasks_score_fractions():
    sub = {"one": [{"attempt_1": B, "attempt_2": B}],                       # 0
           "two": [{"attempt_1": A, "attempt_2": C}, {"attempt_1": C, "attempt_2": C}],  # 1/2
           "three": [{"attempt_1": B, "attempt_2": C}, {"attempt_1": C, "attempt_2": C},
                     {"attempt_1": C, "attempt_2": A}]}                      # 3/3
    r = score_submission(sub, TASKS)
    assert [t.score for t in r.tasks] == [0.0, 0.5, 1.0]
    assert r.score == pytest.approx((0 + 0.5 + 1) / 3)
    assert r.outputs_right == 4 and r.outputs_total == 6 and r.tasks_solved == 1


def test_only_two_attempts_count():
    sub = {"one": [{"attempt_1": B, "attempt_2": C, "attempt_3": A}]}
    assert score_submission(sub, TASKS[:1]).score == 0.0


def test_missing_task_and_missing_attempt():
    sub = {"two": [{"attempt_2": A}, {"attempt_1": B}]}
    r = score_submission(sub, TASKS)
    by = {t.task_id: t for t in r.tasks}
    assert by["one"].score == 0 and by["one"].problems == ["missing from the submission"]
    assert by["two"].right == [True, True]  # a missing attempt is just wrong, the other counts
    assert "[0].attempt_1 missing" in by["two"].problems
    assert by["three"].problems == ["missing from the submission"]


def test_wrong_shapes_and_malformed_grids_count_wrong():
    sub = {"one": [{"attempt_1": [[1, 2, 3], [3, 4]], "attempt_2": [[1, 2]]}],
           "two": [{"attempt_1": [[1, 2], [3, 4]], "attempt_2": [[11]]}, "junk"]}
    r = score_submission(sub, TASKS[:2])
    one, two = r.tasks
    assert one.right == [False] and "row 1 has 2 cells, row 0 has 3" in one.problems[0]
    assert two.right == [True, False]
    assert any("colour 11" in p for p in two.problems)
    assert any("[1] is not an object" in p for p in two.problems)


def test_entry_count_mismatch_and_extra_tasks_are_reported():
    sub = {"three": [{"attempt_1": B, "attempt_2": B}], "stranger": []}
    r = score_submission(sub, TASKS[2:])
    assert r.tasks[0].right == [True, False, False]
    assert "1 entries for 3 test outputs" in r.tasks[0].problems
    assert any("stranger" in p for p in r.problems)


def test_tasks_without_answers_are_not_scored():
    t = Task("blind", TASKS[0].train, (Pair(make_grid([[0]])),))
    r = score_submission({}, [t])
    assert r.tasks == [] and "answers unknown" in r.problems[0]


def test_write_read_roundtrip(tmp_path):
    sub = {"one": [make_entry([make_grid(A)])], "two": [make_entry([make_grid(A), make_grid(C)]),
                                                         make_entry([make_grid(B)])]}
    path = tmp_path / "submission.json"
    write_submission(path, sub)
    back = read_submission(path)
    assert back == sub and back["one"][0] == {"attempt_1": A, "attempt_2": A}
    assert score_submission(back, TASKS[:2]).score == 1.0


@pytest.mark.parametrize("content,match", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "top level is a list"),
])
def test_unreadable_submission(tmp_path, content, match):
    path = tmp_path / "sub.json"
    path.write_text(content)
    with pytest.raises(SubmissionError, match=match):
        read_submission(path)
