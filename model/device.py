"""Device selection shared by training, evaluation, the benchmarks and the service."""

from __future__ import annotations

import torch


class DeviceUnavailable(RuntimeError):
    """A CUDA device was asked for on a machine without one."""


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; naming a GPU that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {name!r} asked for, but CUDA is not available on this machine")
    return device
