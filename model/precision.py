"""Inference precision: fp32, or bf16 autocast where the hardware computes bf16 natively.

bf16 is applied exactly where training's `--amp` applies it: an autocast region around the
forward pass, in which the two convolutions (nearly all the FLOPs) run in bf16 while the model
keeps its capsules, routing and decoder in fp32 (see `model/capsnet.py`). `auto` picks bf16 on
CUDA GPUs and on CPUs with bf16 instructions (AVX512-BF16 or AMX), where it is faster; on other
CPUs bf16 is emulated and slower than fp32, so `auto` stays fp32 there.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles, as torch's own cpuinfo reads them (the same on every OS)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(name: str, device: torch.device) -> Precision:
    """`auto` -> bf16 on a CUDA GPU or a bf16-capable CPU, fp32 elsewhere; explicit names stay."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name != "auto":
        return name  # type: ignore[return-value]
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager[None]:
    """The autocast region for `precision`: a no-op under fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def store_convolutions_in(model: nn.Module, precision: Precision) -> None:
    """Under bf16, keeps the convolutions' weights in bf16 once and for all.

    Autocast would cast the same fp32 weights to the same bf16 values on every forward pass
    (5.3M of them for PrimaryCaps): for a small batch, much of the pass. The results are
    identical; only the repeated cast goes.
    """
    if precision == "bf16":
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.to(torch.bfloat16)
