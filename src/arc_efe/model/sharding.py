"""`--fsdp`: the backbone sharded across the torchrun ranks with FSDP2 (`fully_shard`).

Each decoder layer, then the root, becomes an FSDP unit: its parameters are DTensors, each
rank holding one shard, gathered for its forward and backward and freed after. Gradients are
reduce-scattered by FSDP itself, summed (divide factor 1) as the explicit all-reduce of
distributed.py sums the others, so `sum_gradients` and `clip_grad_norm` skip sharded
parameters and count them through their shards. Meant for NCCL on GPUs; gloo on CPUs works
too (the test runs there: gloo has no PREMUL_SUM, hence the forced plain SUM). Checked in full
mode only: a LoRA or frozen model mixes a low-precision base with float32 adapters and head in
one unit, which FSDP2 may refuse on GPU.

Three things run outside FSDP's own forward:
- the input embedding and the grid positions: the Policy looks the ids up itself (to add
  the grid positions and Solver2's memory vector) and calls the backbone with
  `inputs_embeds`. Both are left out of sharding (`ignored_params`): with the ARC vocabulary
  the embedding has 16 rows and the position tables about 120, so they stay plain tensors on
  every rank and its gradient goes through the explicit all-reduce.
- decoding (validation on rank 0, the memory writer's checks on each rank's own queries): the
  number of forward calls differs between ranks, which sharded layers cannot follow (each
  forward gathers with every rank). `gathered()` unshards every unit on all ranks for the
  duration, and forwards inside it need no communication. The full weights are held on every
  rank meanwhile (each step while the memory writer runs, else at the end of each epoch): what
  --fsdp saves is the sharded gradients and optimizer state, not that peak.
- checkpoints: `full_state` gathers each weight (`DTensor.full_tensor`, on every rank) and
  rank 0 writes them in the usual format; `load_trainable` and `shard_optimizer_state` cut a
  full checkpoint back into this rank's shards, so checkpoints move freely between --fsdp and
  plain runs.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from ..errors import ArcEfeError
from .positions import position_parameters

NOT_LAUNCHED = "--fsdp shards the model across torchrun ranks: start it with torchrun --nproc_per_node N"


def shard_backbone(backbone: nn.Module) -> list[nn.Module]:
    """Shard every decoder layer, then the rest, keeping the input embedding whole; returns
    the FSDP units (layers first, root last)."""
    from torch.distributed.fsdp import fully_shard

    if not torch_dist.is_initialized() or torch_dist.get_world_size() < 2:
        raise ArcEfeError(NOT_LAUNCHED)
    layers = [m for m in backbone.modules() if type(m).__name__.endswith("DecoderLayer")]
    if not layers:
        raise ArcEfeError(f"--fsdp: no decoder layers found in {type(backbone).__name__}")
    keep = set(backbone.get_input_embeddings().parameters()) | set(position_parameters(backbone))
    for layer in layers:
        fully_shard(layer, reshard_after_forward=True)
    fully_shard(backbone, reshard_after_forward=False, ignored_params=keep)
    units = layers + [backbone]
    for u in units:
        u.set_gradient_divide_factor(1.0)  # sum over ranks, like distributed.sum_gradients,
        u.set_force_sum_reduction_for_comms(True)  # with a plain SUM (gloo has no PREMUL_SUM)
    return units


def is_sharded(t: torch.Tensor) -> bool:
    return isinstance(t, DTensor)


@contextlib.contextmanager
def gathered(units: list[nn.Module] | None) -> Iterator[None]:
    """Every unit unsharded on every rank (a collective: all ranks enter), so that forwards
    inside need no communication and may differ between ranks. A no-op without FSDP."""
    if not units:
        yield
        return
    for u in units:
        u.set_reshard_after_forward(False, recurse=False)
        u.unshard()
    try:
        yield
    finally:
        for u in units:
            u.reshard()
        for u in units[:-1]:
            u.set_reshard_after_forward(True, recurse=False)


def full_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies of `tensors` with sharded ones gathered whole (a collective: all ranks call
    it with the same names in the same order)."""
    return {n: (t.full_tensor() if is_sharded(t) else t).detach().to("cpu").contiguous()
            for n, t in tensors.items()}


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` cut into `like`'s shard on this rank (every rank holds `full`: no communication)."""
    return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements,
                             src_data_rank=None)


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state dict with sharded moments gathered whole (a collective)."""
    sd = optimizer.state_dict()
    sd["state"] = {i: {k: (v.full_tensor().cpu() if is_sharded(v) else v) for k, v in s.items()}
                   for i, s in sd["state"].items()}
    return sd


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After loading a full state: each sharded parameter's moments cut to its shard."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for k, v in state.items():
                if is_sharded(p) and torch.is_tensor(v) and not is_sharded(v) and v.shape == p.shape:
                    state[k] = shard_like(v, p)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ over plain and sharded gradients together (it cannot
    mix them): the norm of the whole gradient, every shard counted once."""
    grads = [p.grad for p in params if p.grad is not None]
    device = grads[0].device if grads else torch.device("cpu")
    plain = sum((g.float().pow(2).sum() for g in grads if not is_sharded(g)), torch.zeros((), device=device))
    local = [g.to_local().float().pow(2).sum() for g in grads if is_sharded(g)]
    shards = torch.stack(local).sum() if local else torch.zeros((), device=device)
    if torch_dist.is_initialized():
        torch_dist.all_reduce(shards)
    total = math.sqrt(float(plain.cpu()) + float(shards.cpu()))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total
