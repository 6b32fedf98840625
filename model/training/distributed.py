"""Which process of a `torchrun` job this is, and its device and process group.

Without torchrun's environment (or with a world of one) training is a single process on the
device `--device` names; under torchrun each process takes the GPU of its local rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.device import resolve_device


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job; rank 0 validates, saves and prints."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_arg: str) -> tuple[Distributed, torch.device]:
    """Reads torchrun's environment; picks NCCL on GPUs and gloo on CPUs."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return Distributed(), resolve_device(device_arg)
    dist_info = Distributed(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    )
    device = resolve_device(device_arg)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist_info, device


def barrier(dist_info: Distributed) -> None:
    """Holds every process until rank 0 has saved the epoch; a no-op for one process."""
    if dist_info.world_size > 1:
        dist.barrier()


def shut_down(dist_info: Distributed) -> None:
    """Leaves the process group, so that torchrun sees a clean exit."""
    if dist_info.world_size > 1:
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, dist_info: Distributed, device: torch.device) -> nn.Module:
    """`model` in DistributedDataParallel when there are several processes, else itself."""
    if dist_info.world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
