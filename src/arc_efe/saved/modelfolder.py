"""Model folders: trained weights in the form that ships, such as `models/arc-efe-tiny`.

A model folder holds
- `model.safetensors`: every weight of the backbone (grid position tables included);
- `config.json`: `{"format": "arc-efe-model", "model_name": "tiny", "positions": "2d",
  "max_len": 768, "architecture": {...}}`, the preset and settings it was trained with;
- `manifest.json`: size and SHA-256 of those two files (the same check as a checkpoint's);
- `README.md`: the model card (how it was made, its scores, the same checksums).

`arc-efe export RUN_DIR FOLDER` writes one from a training run in full mode. `evaluate` and
`solve` start from the shipped folder when no `--checkpoint` is given (`--checkpoint fresh`:
an untrained backbone), and `train --init FOLDER` fine-tunes from it. A damaged file is
refused with one line before any weight is read.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..data.jsonfile import read_json
from ..errors import ArcEfeError
from ..model.backbone import ARCHITECTURES
from ..model.positions import POSITIONS
from .checkpoint import MANIFEST, CheckpointError, _describe, _fsync_dir, find_checkpoint, verify_checkpoint

FORMAT = "arc-efe-model"
FRESH = "fresh"  # --checkpoint fresh: an untrained backbone
SHIPPED = Path(__file__).resolve().parents[3] / "models" / "arc-efe-tiny"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass(frozen=True)
class ModelSpec:
    """What a model folder (or a run used as one) needs to be rebuilt."""
    model_name: str  # a preset, a hub id or a local folder of a pretrained Qwen
    positions: str
    max_len: int
    weights: Path  # every weight of the backbone, as `backbone.save_trainable` writes them


def shipped_model() -> Path:
    """The model `evaluate` and `solve` start from when no --checkpoint is given."""
    if not (SHIPPED / CONFIG).is_file():
        raise ArcEfeError(f"no --checkpoint given and the shipped model is missing ({SHIPPED}); give "
                          "--checkpoint RUN_DIR or a model folder, or --checkpoint fresh for an untrained backbone")
    return SHIPPED


def is_model_folder(path: Path) -> bool:
    """A folder whose config.json is a model folder's (a run folder has a training config there)."""
    cfg = path / CONFIG
    if not cfg.is_file():
        return False
    data = read_json(cfg, str(cfg), error=ArcEfeError)
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_model_folder(folder: Path) -> ModelSpec:
    """The verified spec of a model folder: every file checked against manifest.json first."""
    if not (folder / MANIFEST).is_file():
        raise ArcEfeError(f"{folder}: no {MANIFEST}, so its weights cannot be checked")
    try:
        verify_checkpoint(folder)
    except CheckpointError as e:
        fix = ("restore it with git checkout models/arc-efe-tiny" if folder.resolve() == SHIPPED
               else "export it again (arc-efe export)")
        raise ArcEfeError(f"{e}: refused, the model folder is damaged; {fix}") from None
    path = folder / CONFIG
    data = read_json(path, str(path), error=ArcEfeError)
    name, positions, max_len = data.get("model_name"), data.get("positions"), data.get("max_len")
    if not isinstance(name, str) or not name:
        raise ArcEfeError(f"{path}: 'model_name' must be a preset or a model id, got {name!r}")
    if positions not in POSITIONS:
        raise ArcEfeError(f"{path}: 'positions' must be one of {', '.join(POSITIONS)}, got {positions!r}")
    if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 16:
        raise ArcEfeError(f"{path}: 'max_len' must be a whole number of at least 16, got {max_len!r}")
    if name in ARCHITECTURES and data.get("architecture") != ARCHITECTURES[name]:
        raise ArcEfeError(f"{path}: made with another '{name}' architecture than this version's preset")
    return ModelSpec(name, positions, max_len, folder / WEIGHTS)


def model_source(path: str | Path) -> ModelSpec:
    """A model folder, a training run (its latest checkpoint) or one checkpoint folder of a
    run, as the weights to start from. Only full-mode runs hold every weight."""
    from .config import read_run_config

    path = Path(path)
    if not path.exists():
        raise ArcEfeError(f"{path}: no such model folder, run folder or checkpoint")
    if is_model_folder(path):
        return read_model_folder(path)
    chosen = None
    if path.parent.name == "checkpoints":  # one checkpoint folder of a run
        path, chosen = path.parent.parent, path.name
    cfg = read_run_config(path)
    if cfg.mode == "lora":
        raise ArcEfeError(f"{path}: a LoRA run holds only its adapters, not a whole model to start from; "
                          "evaluate it with --checkpoint, or train in full mode")
    ckpt = find_checkpoint(path, chosen)  # verified against its manifest
    return ModelSpec(cfg.model_name, cfg.positions, cfg.max_len, ckpt / WEIGHTS)


def export_model(source: str | Path, folder: str | Path) -> ModelSpec:
    """Write the model folder `folder` from `source` (a run or checkpoint), atomically: it
    appears complete or not at all. The model card (README.md) is left to its author, but a
    card already in `folder` is kept."""
    spec = model_source(source)
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(spec.weights, tmp / WEIGHTS)
    config = {"format": FORMAT, "model_name": spec.model_name, "positions": spec.positions,
              "max_len": spec.max_len, "architecture": ARCHITECTURES.get(spec.model_name)}
    (tmp / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    manifest = {"files": {name: _describe(tmp / name) for name in (CONFIG, WEIGHTS)}}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    if (folder / "README.md").is_file():
        shutil.copyfile(folder / "README.md", tmp / "README.md")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
    return read_model_folder(folder)
