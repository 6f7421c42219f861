"""`--compile`: the training forward through `torch.compile`, everything else uncompiled.

As in nanochat, the uncompiled module is kept: `Run.policy` holds the plain backbone, used for
saving (its state names carry no `_orig_mod.` prefix), validation, the memory writer and
decoding, whose shapes change every token and would only recompile; `Run.model` is a second
`Policy` over the compiled backbone (same parameters), used by the training step alone.

Compiling is meant for GPUs. On a CPU, inductor needs a C++ compiler: without one, training
goes on uncompiled with a printed warning (`compile_backbone` returns the module as it is).
The first steps are slow while the graphs are built; packed rows change length every step,
so the backbone is compiled with dynamic shapes.
"""

from __future__ import annotations

import os
import shutil

import torch
from torch import nn

BACKEND = "inductor"  # tests switch to "eager": the same graph capture without code generation
NO_COMPILER = ("warning: --compile on CPU needs a C++ compiler (g++, clang++ or $CXX) for "
               "torch inductor; none found, training uncompiled")


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on a CPU, or None."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


def compile_backbone(backbone: nn.Module, device: torch.device) -> tuple[nn.Module, str | None]:
    """(module to train with, warning or None). The returned module shares `backbone`'s
    parameters; save and evaluate `backbone` itself."""
    backend = BACKEND
    if device.type == "cpu" and backend == "inductor" and cpp_compiler() is None:
        return backbone, NO_COMPILER
    return torch.compile(backbone, backend=backend, dynamic=True), None
