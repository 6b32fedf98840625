"""bf16 convolutions for inference on a CPU, their weights packed once into oneDNN's own layout.

Given plain bf16 weights, oneDNN reorders them into its blocked layout on every call. For a pass
of one image that reorder costs more than the convolution itself (PrimaryCaps holds 5.3M weights),
which is why plain bf16 is slower than fp32 for small batches. Reordered once at load time, as
PyTorch's own inference compiler does when it freezes a model (the same `mkldnn` operators), bf16
is faster than fp32 at every batch size: `python bench/precision_by_batch.py`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PackedConv2d(nn.Module):
    """`conv` in bf16 (fp32 accumulation), for inputs of `input_size` (N, C, H, W); any batch size
    runs, the shape only guides oneDNN's choice of layout. Its output is bf16, as under autocast."""

    def __init__(self, conv: nn.Conv2d, input_size: tuple[int, int, int, int]) -> None:
        super().__init__()
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"only zero padding of a given size can be packed, not {conv.padding!r}")
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        weight = conv.weight.detach().to(torch.bfloat16)
        self.register_buffer(
            "weight",
            torch.ops.mkldnn._reorder_convolution_weight(
                weight, self.padding, self.stride, self.dilation, self.groups, list(input_size)
            ),
        )
        bias = None if conv.bias is None else conv.bias.detach().to(torch.bfloat16)
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(torch.bfloat16),
            self.weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "none",  # no fused activation
            [],
            "",
        )


def pack_convolutions(model: nn.Module, example: Tensor) -> None:
    """Replaces every `nn.Conv2d` in `model` by its `PackedConv2d`, each packed for the input
    shape it gets in one pass of `example`."""
    shapes: dict[nn.Conv2d, tuple[int, int, int, int]] = {}

    def record(conv: nn.Module, args: tuple[Tensor, ...]) -> None:
        shapes.setdefault(conv, tuple(args[0].shape))  # type: ignore[arg-type]

    convolutions = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    hooks = [conv.register_forward_pre_hook(record) for conv in convolutions]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child in shapes:
                setattr(parent, name, PackedConv2d(child, shapes[child]))
