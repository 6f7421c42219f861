"""Solver2's memory bank: verified solutions, found again by the similarity of their tasks.

Each entry is a task key (L2-normalised, from the task encoder), a solution embedding and
metadata (task id, query index, view, epoch, step, risk, source). `search` returns the
nearest entries by cosine similarity, optionally leaving out entries of given tasks (during
training a query must not find its own task's answer).

Eviction rule:
1. one entry per (task, split, query index): storing a query again replaces its entry when
   the new risk is lower or equal (the best solution is kept), otherwise the bank is left as
   it is;
2. past `capacity`, the oldest entry (first stored) goes.

Search is exact: a matrix product in torch; with `faiss` installed and the bank larger
than `FAISS_MIN_SIZE`, faiss's exact inner-product index gives the same neighbours faster.
Banks are saved as safetensors (keys, values) + JSON (metadata), written atomically; a
corrupt or mismatched file raises an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save

from ..data.files import atomic_write_bytes, atomic_write_json, read_safetensors
from ..data.jsonfile import read_json
from ..errors import ArcEfeError

FAISS_MIN_SIZE = 20_000

try:  # optional: exact search on large banks
    import faiss  # type: ignore[import-not-found]
except ImportError:
    faiss = None


@dataclass
class Neighbours:
    similarity: torch.Tensor  # (Q, k), -inf where there is no neighbour
    index: torch.Tensor  # (Q, k), -1 where there is no neighbour


def _ident(meta: dict[str, Any]) -> tuple:
    return meta["task_id"], meta.get("split"), meta.get("index")


class MemoryBank:
    def __init__(self, dim: int, capacity: int = 10_000):
        if capacity < 1:
            raise ValueError(f"memory capacity must be >= 1, got {capacity}")
        self.dim = dim
        self.capacity = capacity
        self.keys = torch.zeros(0, dim)
        self.values = torch.zeros(0, dim)
        self.meta: list[dict[str, Any]] = []
        self._risk: dict[tuple, float] = {}  # query identity -> risk of its stored entry
        self._serial = 0  # insertion counter: order of age

    def __len__(self) -> int:
        return len(self.meta)

    def task_ids(self) -> list[str]:
        return [m["task_id"] for m in self.meta]

    def add(self, key: torch.Tensor, value: torch.Tensor, meta: dict[str, Any]) -> bool:
        """Store one verified solution; returns False when a better entry for it is kept."""
        for field in ("task_id", "risk"):
            if field not in meta:
                raise ValueError(f"memory entry metadata needs {field!r}")
        key = F.normalize(key.detach().float().reshape(1, self.dim).cpu(), dim=-1)
        value = value.detach().float().reshape(1, self.dim).cpu()
        ident = _ident(meta)
        old = self.stored_risk(meta)
        if old is not None:
            if meta["risk"] > old:
                return False
            self._drop(next(i for i, m in enumerate(self.meta) if _ident(m) == ident))
        self._serial += 1
        self.meta.append({**meta, "serial": self._serial})
        self._risk[ident] = meta["risk"]
        self.keys = torch.cat([self.keys, key])
        self.values = torch.cat([self.values, value])
        while len(self) > self.capacity:
            self._drop(0)  # entries are kept in insertion order: index 0 is the oldest
        return True

    def stored_risk(self, meta: dict[str, Any]) -> float | None:
        """Risk of the entry stored for the same query (task, split, index), if any."""
        return self._risk.get(_ident(meta))

    def _drop(self, i: int) -> None:
        keep = [j for j in range(len(self)) if j != i]
        self.keys, self.values = self.keys[keep], self.values[keep]
        del self._risk[_ident(self.meta[i])]
        del self.meta[i]

    def search(self, query: torch.Tensor, k: int,
               exclude_tasks: Sequence[str | None] | None = None) -> Neighbours:
        """The k nearest entries of each query row by cosine similarity.

        `exclude_tasks[q]` names a task whose entries query q must not see.
        """
        q = F.normalize(query.detach().float().reshape(-1, self.dim).cpu(), dim=-1)
        n_q = q.shape[0]
        sims = torch.full((n_q, k), float("-inf"))
        index = torch.full((n_q, k), -1, dtype=torch.long)
        if len(self) == 0 or k < 1:
            return Neighbours(sims, index)
        extra = 0
        if exclude_tasks is not None:
            counts: dict[str, int] = {}
            for t in self.task_ids():
                counts[t] = counts.get(t, 0) + 1
            extra = max((counts.get(t, 0) for t in exclude_tasks if t is not None), default=0)
        want = min(k + extra, len(self))
        if faiss is not None and len(self) >= FAISS_MIN_SIZE:
            index_ = faiss.IndexFlatIP(self.dim)
            index_.add(self.keys.numpy())
            s, i = index_.search(q.numpy(), want)
            cand_s, cand_i = torch.from_numpy(s), torch.from_numpy(i).long()
        else:
            cand_s, cand_i = (q @ self.keys.T).topk(want, dim=-1)
        tasks = self.task_ids()
        for row in range(n_q):
            bad = exclude_tasks[row] if exclude_tasks is not None else None
            kept = [(s, i) for s, i in zip(cand_s[row].tolist(), cand_i[row].tolist())
                    if i >= 0 and tasks[i] != bad][:k]
            for col, (s, i) in enumerate(kept):
                sims[row, col], index[row, col] = s, i
        return Neighbours(sims, index)

    # --- persistence --------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        tensors = {"keys": self.keys.contiguous(), "values": self.values.contiguous()}
        atomic_write_bytes(folder / "memory.safetensors", st_save(tensors))
        atomic_write_json(folder / "memory.json", {"dim": self.dim, "capacity": self.capacity,
                                                   "serial": self._serial, "entries": self.meta})

    @classmethod
    def load(cls, folder: str | Path) -> "MemoryBank":
        folder = Path(folder)
        tpath, jpath = folder / "memory.safetensors", folder / "memory.json"
        tensors = read_safetensors(tpath, "memory bank")
        info = read_json(jpath, str(jpath), error=ArcEfeError)
        try:
            dim, capacity, entries = int(info["dim"]), int(info["capacity"]), list(info["entries"])
            for i, m in enumerate(entries):
                if not isinstance(m, dict) or "task_id" not in m or not isinstance(m.get("risk"), (int, float)):
                    raise ValueError(f"entry {i} needs a task_id and a numeric risk")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ArcEfeError(f"{jpath}: malformed memory bank metadata ({e})") from None
        keys, values = tensors.get("keys"), tensors.get("values")
        if keys is None or values is None:
            raise ArcEfeError(f"{tpath}: memory bank needs 'keys' and 'values' tensors")
        if keys.shape != (len(entries), dim) or values.shape != (len(entries), dim):
            raise ArcEfeError(f"{tpath}: keys {tuple(keys.shape)} and values {tuple(values.shape)} do "
                              f"not match {len(entries)} entries of size {dim} in {jpath.name}")
        bank = cls(dim, capacity)
        bank.keys, bank.values, bank.meta = keys, values, entries
        bank._risk = {_ident(m): m["risk"] for m in entries}
        bank._serial = int(info.get("serial", len(entries)))
        return bank
