"""Which accelerators this host has and which device each worker owns (what it may claim:
service/store/devices.py)."""

from __future__ import annotations

import re

import torch

_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


def worker_devices(pool_size: int | None) -> list[str]:
    """The device of each worker in a pool: one per GPU by default, else CPU workers."""
    if torch.cuda.is_available():
        gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        size = pool_size if pool_size is not None else len(gpus)
        return [gpus[i % len(gpus)] for i in range(size)]
    accelerator = "mps" if torch.backends.mps.is_available() else "cpu"
    return [accelerator] * (pool_size if pool_size is not None else 1)


def resolve_device(requested: str, worker_device: str) -> torch.device:
    """The device a job actually trains on: "auto" means the worker's own accelerator."""
    if requested == "cpu":
        return torch.device("cpu")
    return torch.device(worker_device)
