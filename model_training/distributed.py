# SPDX-License-Identifier: GPL-2.0-or-later
"""Process-group setup for ``torchrun`` (one process per GPU, or per CPU share) and
the few collectives the training loop needs.

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; without them this is a single process and every collective is a no-op.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size, device, backend."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(backend: str = "auto", timeout_s: float = 1800.0) -> Context:
    """Join the process group ``torchrun`` describes (NCCL on GPUs, gloo on CPU for
    ``auto``) and pick this process's device (``cuda:LOCAL_RANK`` or CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            timeout=timedelta(seconds=timeout_s),
            device_id=device if backend == "nccl" else None,
        )
    return Context(rank, local_rank, world_size, device, backend)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place (gloo cannot reduce int64 on GPU; callers
    pass tensors on ``context.device``)."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(value: Any, context: Context) -> Any:
    """Rank 0's ``value`` on every rank (pickled; for small objects such as statistics)."""
    if not context.distributed:
        return value
    holder = [value if context.is_main else None]
    dist.broadcast_object_list(holder, src=0, device=context.device)
    return holder[0]


def gather_object(value: Any, context: Context) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not context.distributed:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def state_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, bit for bit: equal digests on all ranks
    prove the replicas are identical."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def barrier(context: Context) -> None:
    if context.distributed:
        if context.backend == "nccl":
            dist.barrier(device_ids=[context.device.index])
        else:
            dist.barrier()


def average_batchnorm_statistics(model: nn.Module, context: Context) -> None:
    """Average BatchNorm running statistics over ranks.

    With SyncBatchNorm (GPUs) they are equal already. On CPU, where SyncBatchNorm does
    not run, each rank's running statistics follow its own batches; averaging them before
    validation and checkpoints gives every rank, and the exported model, statistics of
    all the data seen.
    """
    if not context.distributed:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            for buffer in (module.running_mean, module.running_var):
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer.div_(context.world_size)
