import json
from pathlib import Path

import pytest
from hypothesis import settings

from arc_efe.data.sources import load_tasks
from arc_efe.data.tokens import encode_task

# No time limit per generated example: on a loaded, shared machine hypothesis's default 200 ms
# deadline fails correct code (tests assert behaviour, never speed).
settings.register_profile("arc-efe", deadline=None)
settings.load_profile("arc-efe")


def small_task(seed: int = 0, n_train: int = 3, n_test: int = 1, with_answers: bool = True) -> dict:
    """A valid task (recolour 1 -> 2) as raw JSON data."""
    def grid(k):
        return [[(k + seed + r + c) % 2 for c in range(3)] for r in range(2)]

    def recolour(g):
        return [[2 if v == 1 else v for v in row] for row in g]

    train = [{"input": grid(k), "output": recolour(grid(k))} for k in range(n_train)]
    test = []
    for k in range(n_test):
        pair = {"input": grid(10 + k)}
        if with_answers:
            pair["output"] = recolour(grid(10 + k))
        test.append(pair)
    return {"train": train, "test": test}


@pytest.fixture
def write_json(tmp_path: Path):
    def write(name: str, obj) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))
        return path
    return write


def _token_count(task):
    return sum(len(encode_task(task.train, p.input, p.output).tokens) for p in task.test)


@pytest.fixture(scope="session")
def small_tasks_file(tmp_path_factory):
    """The 8 smallest arc-agi-1/training tasks (by token count) as a task-dictionary file."""
    tasks = sorted(load_tasks("arc-agi-1/training").tasks, key=_token_count)[:8]
    path = tmp_path_factory.mktemp("data") / "small.json"
    path.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    return path


@pytest.fixture(scope="session")
def four_tasks_file(small_tasks_file, tmp_path_factory):
    tasks = load_tasks(small_tasks_file).tasks[:4]
    path = tmp_path_factory.mktemp("four") / "four.json"
    path.write_text(json.dumps({t.id: t.to_json() for t in tasks}))
    return path
