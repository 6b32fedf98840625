"""A training step's forward as one module: the shift, the CapsNet, its loss and the step's sums.

`torch.compile` of the model alone left the shift, the loss and the running sums outside its
graph: on a GPU that is dozens of separate kernel launches a step, each costing host time while
the whole step's GPU work is about 2.5 ms (docs/performance.md). Compiling this module instead
puts all of it in one forward graph and one backward graph, one CUDA graph each with
`--compile-mode reduce-overhead`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.capsnet import CapsNetConfig
from model.data import shift_images
from model.losses import capsnet_loss

SUMS = ("loss", "margin", "reconstruction", "correct", "seen", "digits")


class TrainingObjective(nn.Module):
    """`model` (a CapsNet, or one in DistributedDataParallel) and the paper's loss for it."""

    def __init__(self, model: nn.Module, cfg: CapsNetConfig, max_shift: int, amp: bool) -> None:
        super().__init__()
        self.model, self.cfg, self.max_shift, self.amp = model, cfg, max_shift, amp

    def forward(self, images: Tensor, offsets: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, 1, H, W), shift offsets (2, B) as `model.data.random_offsets` draws them,
        labels (B,) -> the loss to minimise and the step's sums, in the order of `SUMS`: the
        three losses times B, the correct predictions, B and the digits among them (the rest have
        label -1: no digit). `amp` runs the convolutions in bf16
        (the model keeps the capsules fp32)."""
        images = shift_images(images, offsets, self.max_shift)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(images, labels.clamp(min=0))  # no digit (-1): its redrawing is not scored
        loss = capsnet_loss(out, images, labels, self.cfg)
        seen = torch.full((), labels.shape[0], dtype=loss.total.dtype, device=labels.device)
        correct = (out.lengths.argmax(1) == labels).sum().to(loss.total.dtype)  # never for no digit
        digits = (labels >= 0).sum().to(loss.total.dtype)
        losses = torch.stack([loss.total, loss.margin, loss.reconstruction]).detach() * seen
        return loss.total, torch.cat([losses, correct[None], seen[None], digits[None]])
