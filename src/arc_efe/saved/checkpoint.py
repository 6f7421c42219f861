"""Checkpoints that really resume, written atomically and verified before they are used.

Layout: `RUN_DIR/checkpoints/step_0000050/` with
- `model.safetensors`: the weights that can change (only the adapter and head for LoRA);
- `optimizer.pt`: optimizer and scheduler state, loaded with `weights_only=True` (plain
  tensors and numbers only: a pickle that would run code is refused, see `load_plain`);
- `rng.safetensors`: torch RNG states;
- `solver2.safetensors`, `memory.safetensors` + `memory.json`: Solver2 and its memory bank;
- `meta.json`: step, epoch, position in the epoch, the config and the loop's own state
  (the epoch's running figures, the learning-rate scale after a rollback);
- `manifest.json`, written last: every other file's size and SHA-256.

A checkpoint is written into a temporary folder, flushed to disk and renamed into place, then
`checkpoints/latest` is updated atomically: a crash, a kill or a full disk at any moment leaves
the previous checkpoint intact. On load the manifest is checked first; a truncated or altered
file is named, and the newest older checkpoint that verifies is offered instead.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from ..data.files import atomic_write_text, read_safetensors
from ..data.jsonfile import read_json
from ..errors import ArcEfeError, SourceError
from ..model.backbone import load_trainable, save_trainable
from ..model.sharding import shard_optimizer_state
from ..solver2.memory import MemoryBank

KEEP_LAST = 3
MANIFEST = "manifest.json"
LEGACY_FILES = ("model.safetensors", "optimizer.pt", "rng.safetensors", "meta.json")  # written before manifests


class CheckpointError(ArcEfeError):
    """A checkpoint that is missing, incomplete or altered; the message offers a good one."""


@dataclass
class Position:
    step: int  # optimizer steps done
    epoch: int  # epoch in progress (0-based)
    batch: int  # micro-batches of that epoch done
    epochs_done: int


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer, scheduler, pos: Position,
                    config: dict[str, Any], solver2: torch.nn.Module | None = None,
                    bank: MemoryBank | None = None, full: tuple[dict, dict] | None = None,
                    state: dict[str, Any] | None = None, keep: int = KEEP_LAST) -> Path:
    """Write checkpoint `step_{pos.step}`; keep the `keep` newest. `full`: (weights, optimizer
    state) already gathered whole from the ranks (--fsdp). `state`: the loop's own JSON state.

    A full disk (or any write error) removes the partial folder and raises one error line; the
    previous checkpoint and `latest` are untouched."""
    ckpt_root = run_dir / "checkpoints"
    name = f"step_{pos.step:07d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_trainable(model, tmp / "model.safetensors", full[0] if full else None)
        torch.save({"optimizer": full[1] if full else optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                   tmp / "optimizer.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"cuda{i}"] = s
        save_file(rng, str(tmp / "rng.safetensors"))
        if solver2 is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in solver2.state_dict().items()},
                      str(tmp / "solver2.safetensors"))
        if bank is not None:
            bank.save(tmp)
        meta = {**pos.__dict__, "config": config, "state": state or {}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        files = sorted(f for f in tmp.iterdir() if f.is_file())
        manifest = {"step": pos.step, "files": {f.name: _describe(f) for f in files}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for f in files + [tmp / MANIFEST]:  # make the files durable before the rename publishes them
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = ckpt_root / f".{name}.old"  # the same step saved again (e.g. a stop at an epoch's end)
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(ckpt_root)
        atomic_write_text(ckpt_root / "latest", name + "\n")
        shutil.rmtree(old, ignore_errors=True)
    except (OSError, RuntimeError, SafetensorError) as e:
        # torch.save and safetensors report a full disk as RuntimeError / SafetensorError
        full = _is_disk_full(e, ckpt_root)
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArcEfeError(disk_full(run_dir, final) if full else _write_failed(run_dir, name, e)) from None
    _prune(ckpt_root, keep)
    return final


def _is_disk_full(e: BaseException, folder: Path) -> bool:
    """ENOSPC or a disk quota, however the writer reported it."""
    text = str(e)
    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
            s in text for s in ("No space left", "os error 28", "Disk quota", "os error 122")):
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20  # checked before the partial files go
    except OSError:
        return False


def _write_failed(run_dir: Path, name: str, e: BaseException) -> str:
    what = (e.strerror or str(e)) if isinstance(e, OSError) else str(e).strip().splitlines()[0]
    where = f" ({e.filename})" if isinstance(e, OSError) and e.filename else ""
    return f"{run_dir}/checkpoints: cannot write checkpoint {name}: {what}{where}; {_last_kept(run_dir)}"


def disk_full(run_dir: Path, writing: str | Path | None) -> str:
    """The one line a full disk gets, wherever training was writing."""
    return f"{run_dir}: no space left on the device while writing {writing or 'the run folder'}; {_last_kept(run_dir)}"


def _last_kept(run_dir: Path) -> str:
    pointer = run_dir / "checkpoints" / "latest"
    last = pointer.read_text().strip() if pointer.is_file() else None
    if last is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint {last} is intact: free space, then continue with --resume {run_dir}"


def _describe(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_checkpoint(path: Path) -> None:
    """Check every file against the manifest: present, same size, same SHA-256.

    Raises CheckpointError naming the first file that differs. A checkpoint written before
    manifests existed is accepted unverified when all its core files are there."""
    mpath = path / MANIFEST
    if not mpath.is_file():
        missing = [f for f in LEGACY_FILES if not (path / f).is_file()]
        if not missing:
            return
        raise CheckpointError(f"{path}: not a complete checkpoint (no {MANIFEST}, no {missing[0]})")
    try:
        files = read_json(mpath, str(mpath), error=CheckpointError)["files"]
        expected = {str(k): (int(v["bytes"]), str(v["sha256"])) for k, v in files.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{mpath}: unreadable manifest ({e})") from None
    except SourceError as e:
        raise CheckpointError(str(e)) from None
    for fname, (size, digest) in expected.items():
        f = path / fname
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (listed in {MANIFEST})")
        actual = f.stat().st_size
        if actual != size:
            raise CheckpointError(f"{f}: {actual} bytes, the manifest says {size} (truncated or cut off)")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f}: contents differ from the manifest's checksum (corrupted)")


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first."""
    root = run_dir / "checkpoints"
    return sorted(p for p in root.glob("step_*") if p.is_dir() and p.name[5:].isdigit()) if root.is_dir() else []


def abandon_newer(run_dir: Path, chosen: Path) -> list[str]:
    """Resuming from an older checkpoint: set newer ones aside (renamed `abandoned_step_*`, never
    deleted) and point `latest` at the chosen one, so nothing later picks the abandoned line."""
    moved = []
    for p in list_checkpoints(run_dir):
        if step_of(p) > step_of(chosen):
            target = p.with_name(f"abandoned_{p.name}")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(p, target)
            moved.append(p.name)
    atomic_write_text(run_dir / "checkpoints" / "latest", chosen.name + "\n")
    return moved


def find_checkpoint(run_dir: Path, name: str | int | None = None) -> Path:
    """The checkpoint to resume from, verified: `name` (a folder name or a step number) when
    given, else the one `latest` points to. When it fails verification, the error names the
    problem and offers the newest older checkpoint that verifies."""
    root = run_dir / "checkpoints"
    if name is not None:
        path = root / (f"step_{int(name):07d}" if str(name).isdigit() else str(name))
        if not path.is_dir():
            have = ", ".join(p.name for p in list_checkpoints(run_dir)) or "none"
            raise CheckpointError(f"{path}: no such checkpoint (this run has: {have})")
    else:
        pointer = root / "latest"
        if not pointer.is_file():  # killed between the first rename and the pointer: the newest good one
            good = last_good_checkpoint(run_dir)
            if good is None:
                raise CheckpointError(f"{run_dir}: no checkpoint to resume from ({pointer} missing)")
            return good
        path = root / pointer.read_text().strip()
        if not path.is_dir():  # killed while the same step was saved again: the newest good one
            good = last_good_checkpoint(run_dir)
            if good is None:
                raise CheckpointError(f"{pointer} names {path.name}, which does not exist; no other checkpoint verifies")
            return good
    try:
        verify_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}{_offer(run_dir, path)}") from None
    return path


def step_of(path: Path) -> int:
    return int(path.name.split("_")[1])


def last_good_checkpoint(run_dir: Path, before: Path | None = None, max_step: int | None = None) -> Path | None:
    """The newest checkpoint that verifies (older than `before`, at most `max_step`, when given)."""
    for p in reversed(list_checkpoints(run_dir)):
        if (before is not None and p.name >= before.name) or (max_step is not None and step_of(p) > max_step):
            continue
        try:
            verify_checkpoint(p)
        except CheckpointError:
            continue
        return p
    return None


def _offer(run_dir: Path, bad: Path) -> str:
    good = last_good_checkpoint(run_dir, before=bad)
    if good is None:
        return "; no earlier checkpoint verifies"
    return (f"; the previous checkpoint {good.name} is intact: continue from it with "
            f"--resume {run_dir} --resume-checkpoint {good.name}")


def load_plain(path: Path, what: str) -> Any:
    """`torch.load` of plain tensors and containers only (weights_only=True): a pickle that
    would build other objects or call functions is refused before anything runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArcEfeError(f"{path}: refused to load {what}: it holds objects other than tensors "
                          f"and plain values, which could run code ({first})") from None
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        raise ArcEfeError(f"{path}: cannot load {what} ({e})") from None


def restore_weights(path: Path, model: torch.nn.Module, optimizer, solver2: torch.nn.Module | None = None,
                    saved: dict | None = None) -> MemoryBank | None:
    """Weights, optimizer moments, Solver2 and the memory bank of a verified checkpoint.
    `saved`: optimizer.pt already loaded (it is read once)."""
    try:
        load_trainable(model, path / "model.safetensors")
        saved = saved if saved is not None else load_plain(path / "optimizer.pt", "the optimizer state")
        optimizer.load_state_dict(saved["optimizer"])
        shard_optimizer_state(optimizer)  # --fsdp: this rank's shards of the moments
        if solver2 is not None:
            solver2.load_state_dict(read_safetensors(path / "solver2.safetensors", "Solver2 checkpoint"))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ArcEfeError(f"{path}: checkpoint cannot be loaded: {e}") from None
    return MemoryBank.load(path) if (path / "memory.json").exists() else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler,
                    solver2: torch.nn.Module | None = None, verify: bool = True
                    ) -> tuple[Position, MemoryBank | None, dict[str, Any]]:
    """Restore everything in place; returns the data position, the memory bank (if saved) and
    the loop's saved state. The checkpoint is verified against its manifest first (`verify=False`
    when `find_checkpoint` just did)."""
    if verify:
        verify_checkpoint(path)
    meta_path = path / "meta.json"
    meta = read_json(meta_path, str(meta_path), error=ArcEfeError)
    try:
        pos = Position(*(int(meta[k]) for k in ("step", "epoch", "batch", "epochs_done")))
        state = dict(meta.get("state") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArcEfeError(f"{meta_path}: not a checkpoint's meta.json (bad or missing {e})") from None
    saved = load_plain(path / "optimizer.pt", "the optimizer state")
    bank = restore_weights(path, model, optimizer, solver2, saved)
    try:
        scheduler.load_state_dict(saved["scheduler"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArcEfeError(f"{path / 'optimizer.pt'}: no usable scheduler state ({e})") from None
    rng = read_safetensors(path / "rng.safetensors", "checkpoint RNG state")
    if "cpu" not in rng:
        raise ArcEfeError(f"{path / 'rng.safetensors'}: no 'cpu' RNG state")
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    return pos, bank, state


def weights_finite(tensors) -> bool:
    """Whether every floating-point tensor is finite: a NaN must never reach a checkpoint."""
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def clean_partial(run_dir: Path) -> None:
    """Remove folders a kill left behind (`.step_*.tmp` of a save, `.step_*.old` of a re-save,
    `.step_*.deleting` of a prune); they are never read."""
    for pattern in (".step_*.tmp", ".step_*.old", ".step_*.deleting"):
        for tmp in (run_dir / "checkpoints").glob(pattern):
            shutil.rmtree(tmp, ignore_errors=True)


def _prune(ckpt_root: Path, keep: int) -> None:
    """Keep the `keep` newest checkpoints, and always the one `latest` names."""
    pointer = ckpt_root / "latest"
    latest = pointer.read_text().strip() if pointer.is_file() else None
    steps = list_checkpoints(ckpt_root.parent)
    for old in steps[:-keep] if keep > 0 else []:
        if old.name != latest:  # renamed first: a kill mid-delete leaves no half checkpoint in view
            doomed = old.with_name(f".{old.name}.deleting")
            os.replace(old, doomed)
            shutil.rmtree(doomed)
