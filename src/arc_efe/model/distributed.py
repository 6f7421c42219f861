"""Data-parallel training under `torchrun`: process group, rank-0 output, gathering.

    torchrun --nproc_per_node 2 -m arc_efe train --device cpu ...     # gloo on CPU
    torchrun --nproc_per_node 8 -m arc_efe train --device cuda ...    # NCCL, one GPU per rank

Without torchrun's environment (WORLD_SIZE unset or 1) every function here is the
single-process identity, so the training loop never asks whether it is distributed.

How training uses it: each optimizer step covers `grad_accum_steps x world` micro-batches of
the epoch; rank r takes micro-batches r, r + world, ... of them. Every loss term is normalised
by the token counts of the whole step summed over ranks, and the gradients are summed over
ranks, so a step equals the single-process step over the same micro-batches (the test checks
it). Gradients are all-reduced explicitly once per step rather than through a
`DistributedDataParallel` wrapper: a step runs the backbone several times (task keys, each
micro-batch) and Solver2 outside the backbone's forward, which DDP's hooks do not cover.
Solver2's new memory entries are all-gathered every step and added in rank order on every
rank, so the bank stays identical everywhere. Only rank 0 prints, logs and writes files.
"""

from __future__ import annotations

import builtins
import os
from datetime import timedelta
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from ..errors import ArcEfeError
from .device import resolve_device


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """print, on rank 0 only."""
    if is_main():
        builtins.print(*args, **kwargs)


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_spec: str) -> torch.device:
    """The device of this rank; starts the process group when launched by torchrun
    (NCCL for GPUs, gloo for CPUs). cuda ranks use the GPU of their LOCAL_RANK."""
    device = resolve_device(device_spec)
    if not launched():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ArcEfeError(f"rank with LOCAL_RANK {local} has no GPU ({torch.cuda.device_count()} "
                              "present): start at most one process per GPU")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return device


def close(wait: bool = True) -> None:
    """Tear the process group down. With `wait` (a normal end) every rank first meets at a
    barrier: a rank that destroys its gloo group while another still uses it can abort the
    other ("terminate called without an active exception"). After an error nobody waits."""
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def on_main(fn: Callable[[], Any]) -> Any:
    """`fn()` on rank 0 while the other ranks wait; its result on rank 0 (None elsewhere).

    If it fails, rank 0 raises its own error and every other rank raises a quiet ArcEfeError
    (rank 0 has said what went wrong), where a bare barrier would leave them waiting for ever."""
    if not dist.is_initialized():
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the others know
            error = e
    failed = broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failed is not None:
        err = ArcEfeError(f"rank 0 failed ({failed}); rank {rank()} stops too")
        err.quiet = True  # rank 0 prints the error; the other ranks stay silent
        raise err
    return result


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(items: list) -> list:
    """Every rank's `items`, concatenated in rank order, on every rank."""
    if not dist.is_initialized():
        return items
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


def sum_floats(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def sync_parameters(modules: Iterable[torch.nn.Module]) -> None:
    """Rank 0's parameters and buffers on every rank (same start whatever the seeding)."""
    if not dist.is_initialized():
        return
    with torch.no_grad():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, src=0)


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum the gradients over ranks in one flat buffer. A parameter keeps no gradient (and so
    is not stepped) only when no rank gave it one, as in a single process. Sharded (--fsdp)
    parameters are left out: FSDP reduce-scatters theirs."""
    params = [p for p in params if not isinstance(p, DTensor)]
    if not dist.is_initialized() or not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                      for p in params]
                     + [torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)])
    dist.all_reduce(flat)
    had = flat[-len(params):].tolist()
    at = 0
    for p, h in zip(params, had):
        n = p.numel()
        p.grad = flat[at: at + n].view_as(p).to(p.dtype) if h > 0 else None
        at += n
