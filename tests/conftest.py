import json
from pathlib import Path

import pytest


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
