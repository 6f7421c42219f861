"""The device and the floating-point type, chosen in one place.

Everything else takes a `torch.device` and a dtype from here, so no module hard-codes
cuda and the same command runs on a laptop (`--device cpu`) and on a GPU machine.
"""

from __future__ import annotations

import contextlib
import re

import torch

from ..errors import ArcEfeError

_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(spec: str = "auto") -> torch.device:
    """"auto" (cuda when present, else cpu), "cpu", "cuda" or "cuda:N"."""
    m = _SPEC.match(spec.strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ArcEfeError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    kind, index = m.group(1), m.group(2)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ArcEfeError(f"device {spec!r} asked for, but no CUDA GPU is available here; "
                          "use --device cpu")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ArcEfeError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} "
                          "CUDA GPU(s) are present; use cuda:0 or --device cpu")
    return torch.device(spec.strip().lower())


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a GPU that supports it (half the memory, same range), else float32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for `dtype`; nothing at all for float32 (CPU autocast is slow)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
