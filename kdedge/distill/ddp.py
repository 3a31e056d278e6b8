"""Distributed data parallel, switched on by torchrun's environment (nanoGPT's dozen lines).

`torchrun --nproc_per_node=N -m kdedge.cli distill ...` sets RANK / LOCAL_RANK / WORLD_SIZE;
without them training is a single process and nothing here does anything. NCCL on CUDA, gloo on
the CPU (that is how the tests run two processes on this machine). Rank 0 does all file I/O
(checkpoints, metrics, plots, validation); every rank draws different patches (its rank is in its
sampler seed), and gradients are averaged by DDP.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class DistInfo:
    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    if "RANK" not in os.environ:
        return DistInfo()
    import torch
    import torch.distributed as dist

    info = DistInfo(True, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)),
                    int(os.environ.get("WORLD_SIZE", 1)))
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(info: DistInfo, obj):
    """Rank 0's value of a picklable object on every rank (small things: stop flags, metrics)."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(info: DistInfo, params) -> None:
    """All-reduce mean of gradients of parameters that live outside the DDP module (feature adapters)."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


def cleanup(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
