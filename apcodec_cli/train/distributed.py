"""Process group set-up for runs launched by torchrun (PyTorch DDP), and the single case.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is one process.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from ..runtime import resolve_device


@dataclasses.dataclass(frozen=True)
class Process:
    """This process's place in the run.

    Attributes:
        rank: Global rank (0 logs, validates and saves).
        world: Number of processes.
        device: The device this process trains on.
    """

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def start(device_name: str) -> Process:
    """Join the torchrun process group if there is one; pick this process's device."""
    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Process(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(dist.get_rank(), world, device)


def any_true(flag: bool, process: Process) -> bool:
    """Whether `flag` is true on any process (all processes must call this together)."""
    if not process.distributed:
        return flag
    value = torch.tensor([int(flag)], device=process.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(process: Process) -> None:
    """Wait for every process (no-op in a single-process run)."""
    if process.distributed:
        dist.barrier()


def stop(process: Process) -> None:
    """Leave the process group."""
    if process.distributed:
        dist.destroy_process_group()
