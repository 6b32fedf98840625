"""Inference precision: fp32, or bf16 where the hardware computes bf16 natively.

bf16 is applied exactly where training's `--amp` applies it: the two convolutions (nearly all the
FLOPs) run in bf16 while the model keeps its capsules, routing and decoder in fp32 (see
`model/capsnet.py`). `auto` picks bf16 on CUDA GPUs and on CPUs with bf16 instructions (AVX512-BF16
or AMX), where it is faster; on other CPUs bf16 is emulated and slower than fp32, so `auto` stays
fp32 there. `ServingPrecision` readies a served model for its precision once, at load time.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import torch
from torch import nn

from model.capsnet import CapsNet
from model.packed_conv import pack_convolutions

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


class ServingPrecision:
    """The precision of every forward pass of one served model, its convolutions readied for it.

    Under bf16 the convolutions' weights are converted once, not on every pass. On a CPU with bf16
    instructions they are packed for oneDNN (`model.packed_conv`) and compute in bf16 by themselves:
    fp32 weights given to autocast, or even bf16 weights in torch's layout, would be converted on
    every pass, which for a pass of one image costs more than the convolution. Elsewhere (a GPU) they
    are kept in bf16 and each pass runs in an autocast region. The fp32 weights go either way.
    """

    def __init__(self, model: CapsNet, device: torch.device, precision: Precision) -> None:
        self.device, self.precision = device, precision
        self.packed = precision == "bf16" and packs_bf16(device)
        if self.packed:
            side = model.config.image_size
            pack_convolutions(model, torch.zeros(1, model.config.in_channels, side, side, device=device))
        elif precision == "bf16":
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    module.to(torch.bfloat16)

    def region(self) -> AbstractContextManager[None]:
        """Where a forward pass runs: autocast for bf16 weights that are not packed, else nothing."""
        return autocast(self.device, "fp32" if self.packed else self.precision)

    def describe(self) -> str:
        return f"{self.precision} (convolutions packed for oneDNN)" if self.packed else self.precision


def packs_bf16(device: torch.device) -> bool:
    """A CPU that computes bf16 natively, and a torch with oneDNN: packed bf16 convolutions."""
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and cpu_has_native_bf16()
