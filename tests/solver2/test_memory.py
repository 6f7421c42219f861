"""Solver2's memory bank and its gate and success rule."""

import json

import pytest
import torch

from arc_efe.errors import ArcEfeError
from arc_efe.solver2 import memory as memory_module
from arc_efe.solver2.memory import MemoryBank
from arc_efe.solver2.retrieval import Solver2

D = 8


def _entry(task, risk=0.1, index=0):
    return {"task_id": task, "split": "train", "index": index, "risk": risk}


def _bank(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    bank = MemoryBank(D, capacity=100)
    for i in range(n):
        bank.add(torch.randn(D, generator=g), torch.randn(D, generator=g), _entry(f"t{i}"))
    return bank


def test_added_key_is_its_own_nearest_neighbour():
    bank = _bank(20)
    for i in range(20):
        nb = bank.search(bank.keys[i], k=3)
        assert int(nb.index[0, 0]) == i and float(nb.similarity[0, 0]) == pytest.approx(1.0, abs=1e-5)
    assert len(bank) == 20


def test_search_excludes_the_queries_own_task():
    bank = _bank(6)
    bank.add(bank.keys[2] * 3, torch.zeros(D), _entry("t2", index=1))  # a second entry of t2
    nb = bank.search(bank.keys[2:3], k=4, exclude_tasks=["t2"])
    found = [bank.meta[i]["task_id"] for i in nb.index[0].tolist() if i >= 0]
    assert len(found) == 4 and "t2" not in found


def test_search_on_empty_bank_and_short_bank():
    empty = MemoryBank(D)
    nb = empty.search(torch.randn(2, D), k=3)
    assert (nb.index == -1).all() and torch.isinf(nb.similarity).all()
    nb = _bank(2).search(torch.randn(1, D), k=4)
    assert (nb.index[0, 2:] == -1).all() and (nb.index[0, :2] >= 0).all()


def test_eviction_keeps_capacity_oldest_out():
    bank = MemoryBank(D, capacity=3)
    for i in range(5):
        bank.add(torch.randn(D), torch.randn(D), _entry(f"t{i}"))
    assert len(bank) == 3 and bank.task_ids() == ["t2", "t3", "t4"]


def test_same_query_keeps_the_best_entry():
    bank = MemoryBank(D)
    assert bank.add(torch.randn(D), torch.randn(D), _entry("a", risk=0.2))
    assert not bank.add(torch.randn(D), torch.randn(D), _entry("a", risk=0.5))  # worse: refused
    assert bank.add(torch.randn(D), torch.randn(D), _entry("a", risk=0.1))  # better: replaces
    assert len(bank) == 1 and bank.meta[0]["risk"] == 0.1
    bank.add(torch.randn(D), torch.randn(D), _entry("a", risk=0.3, index=1))  # another query
    assert len(bank) == 2


def test_save_load_roundtrip_is_bit_exact(tmp_path):
    bank = _bank(7)
    bank.save(tmp_path)
    back = MemoryBank.load(tmp_path)
    assert torch.equal(back.keys, bank.keys) and torch.equal(back.values, bank.values)
    assert back.meta == bank.meta and back.capacity == bank.capacity
    back.add(torch.randn(D), torch.randn(D), _entry("new"))
    assert back.meta[-1]["serial"] == bank.meta[-1]["serial"] + 1


def test_corrupt_or_mismatched_bank_is_a_clear_error(tmp_path):
    _bank(3).save(tmp_path)
    (tmp_path / "memory.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ArcEfeError, match="memory.safetensors: not a safetensors memory bank"):
        MemoryBank.load(tmp_path)
    _bank(3).save(tmp_path)
    meta = json.loads((tmp_path / "memory.json").read_text())
    meta["entries"] = meta["entries"][:2]
    (tmp_path / "memory.json").write_text(json.dumps(meta))
    with pytest.raises(ArcEfeError, match="do not match 2 entries"):
        MemoryBank.load(tmp_path)
    (tmp_path / "memory.json").write_text("{")
    with pytest.raises(ArcEfeError, match="memory.json: not valid JSON"):
        MemoryBank.load(tmp_path)
    meta["entries"][0] = {"task_id": "a"}  # no risk
    (tmp_path / "memory.json").write_text(json.dumps(meta))
    with pytest.raises(ArcEfeError, match=r"memory.json: malformed memory bank metadata \(entry 0 needs"):
        MemoryBank.load(tmp_path)


def test_faiss_and_torch_search_agree(monkeypatch):
    if memory_module.faiss is None:
        pytest.skip("faiss is not installed")
    bank = _bank(300, seed=1)
    queries = torch.randn(10, D)
    exclude = [f"t{i}" for i in range(10)]
    monkeypatch.setattr(memory_module, "FAISS_MIN_SIZE", 10 ** 9)
    plain = bank.search(queries, 5, exclude)
    monkeypatch.setattr(memory_module, "FAISS_MIN_SIZE", 1)
    fast = bank.search(queries, 5, exclude)
    assert torch.equal(plain.index, fast.index)
    assert torch.allclose(plain.similarity, fast.similarity, atol=1e-5)


def test_gate_starts_at_zero_so_memory_cannot_change_the_output():
    s2 = Solver2(D)
    keys = torch.nn.functional.normalize(torch.randn(3, D), dim=-1)
    out, found = s2.readout(_bank(10), keys)
    assert found == 3 and torch.equal(out, torch.zeros(3, D))
    empty, found = s2.readout(MemoryBank(D), keys)
    assert found == 0 and torch.equal(empty, torch.zeros(3, D))
    with torch.no_grad():
        s2.gate.fill_(0.5)
    opened, _ = s2.readout(_bank(10), keys)
    assert opened.abs().sum() > 0


def test_gate_receives_gradient_at_zero():
    s2 = Solver2(D)
    keys = torch.nn.functional.normalize(torch.randn(2, D), dim=-1)
    out, _ = s2.readout(_bank(10), keys)
    out.sum().backward()
    assert s2.gate.grad is not None and float(s2.gate.grad.abs()) > 0


def test_solver2_state_from_before_refinement_was_removed_loads():
    """Older checkpoints also hold the halting head (`halt.*`): it is left out, the rest loads."""
    s2 = Solver2(D)
    old = {**{k: v + 1 for k, v in s2.state_dict().items()},
           "halt.weight": torch.zeros(1, D), "halt.bias": torch.zeros(1)}
    fresh = Solver2(D)
    fresh.load_state_dict(old)
    assert float(fresh.gate.detach()) == 1.0
    with pytest.raises(RuntimeError):  # anything else that does not fit is still refused
        fresh.load_state_dict({**old, "other.weight": torch.zeros(1)})
