"""Checkpoints that really resume: weights, optimizer, scheduler, RNG, data position, config.

Layout: `RUN_DIR/checkpoints/step_0000050/` with
- `model.safetensors`: the weights that can change (only the adapter and head for LoRA);
- `optimizer.pt`: optimizer and scheduler state, loaded with `weights_only=True`;
- `rng.safetensors`: torch RNG states;
- `solver2.safetensors`, `memory.safetensors` + `memory.json`: Solver2 and its memory bank;
- `meta.json`: step, epoch, position in the epoch, and the config.
A checkpoint is written into a temporary folder and renamed into place, then
`checkpoints/latest` is updated atomically: a crash leaves the previous one intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .backbone import load_trainable, save_trainable
from .errors import ArcEfeError
from .files import atomic_write_text, read_safetensors
from .memory import MemoryBank
from .sharding import shard_optimizer_state

KEEP_LAST = 3


@dataclass
class Position:
    step: int  # optimizer steps done
    epoch: int  # epoch in progress (0-based)
    batch: int  # micro-batches of that epoch done
    epochs_done: int


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer, scheduler, pos: Position,
                    config: dict[str, Any], solver2: torch.nn.Module | None = None,
                    bank: MemoryBank | None = None, full: tuple[dict, dict] | None = None) -> Path:
    """`full`: (weights, optimizer state) already gathered whole from the ranks (--fsdp)."""
    ckpt_root = run_dir / "checkpoints"
    name = f"step_{pos.step:07d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_trainable(model, tmp / "model.safetensors", full[0] if full else None)
    torch.save({"optimizer": full[1] if full else optimizer.state_dict(), "scheduler": scheduler.state_dict()},
               tmp / "optimizer.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda{i}"] = state
    save_file(rng, str(tmp / "rng.safetensors"))
    if solver2 is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in solver2.state_dict().items()},
                  str(tmp / "solver2.safetensors"))
    if bank is not None:
        bank.save(tmp)
    (tmp / "meta.json").write_text(json.dumps({**pos.__dict__, "config": config}, indent=1))
    for f in tmp.iterdir():  # make the files durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(ckpt_root / "latest", name + "\n")
    _prune(ckpt_root, keep=KEEP_LAST)
    return final


def latest_checkpoint(run_dir: Path) -> Path:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        raise ArcEfeError(f"{run_dir}: no checkpoint to resume from ({pointer} missing)")
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not path.is_dir():
        raise ArcEfeError(f"{pointer} names {path.name}, which does not exist")
    return path


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler,
                    solver2: torch.nn.Module | None = None) -> tuple[Position, MemoryBank | None]:
    """Restore everything in place; returns the data position and the memory bank (if saved)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        load_trainable(model, path / "model.safetensors")
        state = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        shard_optimizer_state(optimizer)  # --fsdp: this rank's shards of the moments
        scheduler.load_state_dict(state["scheduler"])
        rng = read_safetensors(path / "rng.safetensors", "checkpoint RNG state")
        if solver2 is not None:
            solver2.load_state_dict(read_safetensors(path / "solver2.safetensors", "Solver2 checkpoint"))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ArcEfeError(f"{path}: checkpoint cannot be loaded: {e}") from None
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    bank = MemoryBank.load(path) if (path / "memory.json").exists() else None
    return Position(meta["step"], meta["epoch"], meta["batch"], meta["epochs_done"]), bank


def _prune(ckpt_root: Path, keep: int) -> None:
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old)
