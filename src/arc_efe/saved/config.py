"""The training configuration: one typed object, saved as `config.json` in the run folder.

`read_run_config` reads it back (resume, evaluate, model folders) and checks every value's
type. The `arc-efe train` flags that make it are in `training/flags.py`.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.jsonfile import read_json
from ..data.tasks import json_kind, shown
from ..errors import ConfigError
from ..loss import DEFAULT_WEIGHTS
from ..model.backbone import MODES, BackboneConfig, head_parameters, load_backbone
from ..model.device import default_dtype
from ..model.positions import DEFAULT_POSITIONS, POSITIONS

# The users' three --preset settings (policy learning rate, weight decay).
LR_PRESETS = {
    "conservative": {"agent_lr": 5e-5, "weight_decay": 1e-6},
    "medium": {"agent_lr": 1e-4, "weight_decay": 1e-5},
    "aggressive": {"agent_lr": 5e-4, "weight_decay": 1e-4},
}


@dataclass
class TrainConfig:
    # data
    data: str | None = None  # None: training.json in the working directory, else arc-agi-1/training
    mix: str | None = None  # weights of the '+'-joined sources of `data`, e.g. "0.3,0.7"
    solutions: str | None = None
    skip_invalid: bool = False
    val_fraction: float = 0.1
    max_len: int = 2048
    augment: bool = True
    curriculum: bool = False  # generated grids grow from 3x3 to the source's limit over the first half
    pack: bool = True  # several sequences per row (packing.py); False: one padded row each
    max_tokens: int | None = None  # tokens per packed row; None: the whole micro-batch in one row
    # model
    model_name: str = "tiny"
    init: str | None = None  # start from these weights: a model folder, a run or a checkpoint (full mode)
    mode: str = "full"
    positions: str = DEFAULT_POSITIONS  # grid positions (positions.py); "1d" = the token stream alone
    lora_rank: int = 16
    lora_alpha: int = 32
    device: str = "auto"
    grad_checkpointing: bool = False  # recompute activations in the backward pass
    compile: bool = False  # torch.compile the backbone for the training step (compiling.py)
    fsdp: bool = False  # shard the backbone across torchrun ranks (sharding.py)
    # optimisation
    epochs: int = 5
    max_batches: int | None = None  # micro-batches per epoch; None: the whole epoch
    batch_size: int = 4
    grad_accum_steps: int = 1
    agent_lr: float = 1e-4
    qwen_lr: float | None = None  # None: same as agent_lr
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    warmup_steps: int = 10
    seed: int = 0
    preset: str | None = None
    # loss
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    label_smoothing: float = 0.0
    # Solver2
    success_threshold: str = "exact"
    memory: bool = True
    memory_top_k: int = 4
    memory_capacity: int = 10_000
    # evaluation, logging, checkpoints
    val_frequency: int = 1  # epochs
    save_frequency: int = 1  # epochs
    save_every_steps: int = 0  # also a checkpoint every N optimizer steps; 0 = per epoch only
    keep_checkpoints: int = 3  # newest checkpoints kept; older ones are deleted
    # NaN/inf guard: a non-finite step is skipped; after this many in a row, roll back
    nan_rollback: int = 5  # 0 = never roll back (bad steps are still skipped)
    rollback_lr_factor: float = 0.5  # learning rate x this at each rollback
    max_rollbacks: int = 3  # past this, training stops with an error
    train_eval_queries: int = 32
    icl_tasks: int = 32  # fresh generated tasks answered in context after every epoch; 0 = off
    max_val_tasks: int = 32
    output_dir: str = "runs"
    run_name: str | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.preset is not None:
            if self.preset not in LR_PRESETS:
                raise ConfigError(f"--preset must be one of {', '.join(LR_PRESETS)}, got {self.preset}")
            for k, v in LR_PRESETS[self.preset].items():
                setattr(self, k, v)
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode}")
        if self.positions not in POSITIONS:
            raise ConfigError(f"--positions must be one of {', '.join(POSITIONS)}, got {self.positions}")
        for name in ("epochs", "batch_size", "grad_accum_steps", "max_len", "val_frequency",
                     "save_frequency", "memory_top_k", "memory_capacity",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be >= 1, got {self.max_tokens}")
        if self.max_batches is not None and self.max_batches < 1:
            raise ConfigError(f"--max-batches must be >= 1, got {self.max_batches}")
        if self.agent_lr <= 0 or (self.qwen_lr is not None and self.qwen_lr < 0):
            raise ConfigError("learning rates must be positive")
        for name in ("save_every_steps", "nan_rollback", "max_rollbacks", "icl_tasks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.rollback_lr_factor <= 1:
            raise ConfigError(f"--rollback-lr-factor must be in (0, 1], got {self.rollback_lr_factor}")
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ConfigError(f"unknown loss components {sorted(unknown)}")
        if self.success_threshold != "exact":
            try:
                float(self.success_threshold)  # a per-query risk threshold, e.g. 0.05
            except ValueError:
                raise ConfigError("--success-threshold must be 'exact' or a number such as 0.05, "
                                  f"got {self.success_threshold!r}") from None

    @property
    def backbone_lr(self) -> float:
        return self.agent_lr if self.qwen_lr is None else self.qwen_lr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, source: str = "config") -> "TrainConfig":
        """The config saved as `d` (a run's config.json), checked like the flags are.

        A value of the wrong type or out of range is a ConfigError naming `source` and the key,
        not a TypeError deep inside training. Unknown keys are ignored (older or newer runs).
        """
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: top level is {json_kind(d)}, expected an object of settings")
        hints = typing.get_type_hints(cls)
        values = {k: _checked(v, hints[k], source, k) for k, v in d.items() if k in hints}
        preset = values.pop("preset", None)  # its values are already in the saved settings
        values.setdefault("positions", "1d")  # runs from before grid positions had none
        try:
            cfg = cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        cfg.preset = preset
        return cfg


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The settings a training run saved in RUN_DIR/config.json."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (is {run_dir} a training run folder?)")
    return TrainConfig.from_dict(read_json(path, str(path), error=ConfigError), source=str(path))


def load_run_backbone(cfg: TrainConfig, device: torch.device, init: Path | None = None) -> nn.Module:
    """The backbone a run's settings describe, on `device`, for training and for answering.

    Trained weights stay in float32 (bf16 autocast does the GPU math); weights that never
    change (a frozen or LoRA base) are held in the compute dtype to halve their memory; the
    output head always learns, so it is float32 too. `init`: weights to start from (verified)."""
    weight_dtype = default_dtype(device) if cfg.mode in ("frozen", "lora") else torch.float32
    backbone = load_backbone(BackboneConfig(model_name=cfg.model_name, mode=cfg.mode, lora_rank=cfg.lora_rank,
                                            lora_alpha=cfg.lora_alpha, positions=cfg.positions, init=init),
                             device, weight_dtype)
    for p in head_parameters(backbone):
        p.data = p.data.float()
    return backbone


def _checked(value: Any, hint: Any, source: str, key: str) -> Any:
    """`value` for a field annotated `hint` (an int where a float goes becomes a float)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if _fits(value, option):
            if option is float:
                return float(value)
            return {k: float(v) for k, v in value.items()} if isinstance(value, dict) else value
    expected = " or ".join(_TYPE_WORDS.get(o, str(o)) for o in options if o is not type(None))
    if type(None) in options:
        expected += " or null"
    raise ConfigError(f"{source}: '{key}' is {shown(value)}, expected {expected}")


def _fits(value: Any, option: Any) -> bool:
    if option is type(None) or value is None:
        return option is type(None) and value is None
    if option is bool or isinstance(value, bool):  # JSON true/false only where a flag goes
        return option is bool and isinstance(value, bool)
    if option is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    if typing.get_origin(option) is dict:  # the loss weights: {component: number}
        return isinstance(value, dict) and all(_fits(v, float) for v in value.values())
    return isinstance(value, option)


_TYPE_WORDS = {int: "a whole number", float: "a finite number", str: "a string",
               bool: "true or false", dict[str, float]: "an object of numbers {name: number}"}


def default_data() -> str:
    return "training.json" if Path("training.json").is_file() else "arc-agi-1/training"
