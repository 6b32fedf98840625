"""Inference precision: fp32, or bf16 autocast where the hardware computes bf16 natively.

bf16 is applied exactly where training's `--amp` applies it: an autocast region around the
forward pass, in which the two convolutions (nearly all the FLOPs) run in bf16 while the model
keeps its capsules, routing and decoder in fp32 (see `model/capsnet.py`). `auto` picks bf16 on
CUDA GPUs and on CPUs with bf16 instructions (AVX512-BF16 or AMX), where it is faster; on other
CPUs bf16 is emulated and slower than fp32, so `auto` stays fp32 there. On a CPU, bf16 pays only
from a few images a pass: `auto` runs smaller passes there in fp32 (`ServingPrecision`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
# On a CPU with bf16 instructions a pass of 1 or 2 images takes 1.2-1.5x as long in bf16 as in fp32,
# one of 4 takes 0.82x and one of 32 half (`python bench/precision_by_batch.py`, 2-core Xeon VM).
CPU_FP32_BELOW = 4


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


def fp32_below(name: str, device: torch.device) -> int:
    """Passes of fewer images than this run in fp32: under `auto` on a CPU that would serve bf16,
    the few images for which bf16 is slower; 1 (none) on a GPU or when a precision is forced."""
    bf16_cpu = name == "auto" and device.type == "cpu" and resolve_precision(name, device) == "bf16"
    return CPU_FP32_BELOW if bf16_cpu else 1


class ServingPrecision:
    """The precision of every forward pass of one served model, and the convolution weights it needs.

    Each pass runs in `precision`, except that one of fewer than `fp32_below` images runs in fp32.
    Under bf16 the convolutions' weights are kept in bf16 once: autocast would cast the same fp32
    weights (5.3M of them for PrimaryCaps) on every pass, for a small batch much of it, to the same
    values. Where small passes run in fp32, the fp32 weights stay beside the bf16 ones (10.6 MB more)
    and a pass swaps in the set it needs, a few attribute assignments. One thread runs the passes.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: Precision, fp32_below: int = 1):
        self.device, self.precision, self.fp32_below = device, precision, fp32_below
        self._convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        self._weights = {"fp32": [(m.weight, m.bias) for m in self._convolutions]}
        if precision == "bf16":
            self._weights["bf16"] = [(in_bf16(m.weight), in_bf16(m.bias)) for m in self._convolutions]
            if fp32_below <= 1:
                del self._weights["fp32"]  # never used again: its memory goes
        self._current: Precision = "fp32"
        self._use(precision)

    def for_batch(self, size: int) -> Precision:
        return "fp32" if size < self.fp32_below else self.precision

    @contextmanager
    def region(self, size: int) -> Iterator[None]:
        """A pass of `size` images: its convolution weights in place and its autocast region."""
        precision = self.for_batch(size)
        self._use(precision)
        with autocast(self.device, precision):
            yield

    def _use(self, precision: Precision) -> None:
        if precision != self._current:
            for module, (weight, bias) in zip(self._convolutions, self._weights[precision], strict=True):
                module.weight, module.bias = weight, bias
            self._current = precision


def in_bf16(parameter: nn.Parameter | None) -> nn.Parameter | None:
    return None if parameter is None else nn.Parameter(parameter.detach().to(torch.bfloat16), False)
