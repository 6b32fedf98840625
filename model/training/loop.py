"""One training epoch (the paper's margin + reconstruction loss, 2-pixel shifts) and validation.

Plain functions in the manner of pytorch/examples' `mnist/main.py`: `train_step` is one optimizer
step of a `TrainingObjective` (what `torch.compile` compiles), `train_one_epoch` a pass over the
shuffled batches that returns the epoch's means, and `evaluate_split` the accuracy and loss of a
held-out split decoded as at inference.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from model.capsnet import CapsNet
from model.data import Split, random_offsets
from model.losses import capsnet_loss
from model.training.batches import ShuffledBatches
from model.training.distributed import Distributed
from model.training.objective import SUMS, TrainingObjective
from model.training.progress import epoch_bar, show_running


def train_step(
    objective: TrainingObjective,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    offsets: Tensor,
    labels: Tensor,
) -> Tensor:
    """One optimizer step; returns the step's sums (in the order of `SUMS`), still on the device."""
    loss, sums = objective(images, offsets, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return sums


def train_one_epoch(
    objective: TrainingObjective,
    loader: ShuffledBatches,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    args: argparse.Namespace,
    epoch: int,
    dist_info: Distributed,
    averaged: AveragedModel | None = None,
) -> dict[str, float]:
    """One pass over `loader` (reads `args.seed` and `epochs`); `averaged`, if given, takes in the
    weights after every step. The sums stay on the device until the end."""
    objective.train()
    shift_rng = torch.Generator().manual_seed(args.seed * 100_003 + epoch * 1_009 + dist_info.rank)
    totals = torch.zeros(len(SUMS), device=device)
    bar = epoch_bar(loader, epoch, args.epochs, dist_info.is_main)
    start = time.perf_counter()
    for step, (images, labels) in enumerate(bar):
        offsets = random_offsets(len(labels), objective.max_shift, shift_rng).to(device)
        totals += train_step(objective, optimizer, images.to(device), offsets, labels.to(device))
        if averaged is not None:
            averaged.update_parameters(objective.model)
        if step % 50 == 0:  # reading the totals waits for the device: not every step
            show_running(bar, loss=totals[0].item(), correct=totals[3].item(), seen=totals[5].item())
    if dist_info.world_size > 1:
        dist.all_reduce(totals)
    loss_sum, margin, reconstruction, correct_sum, seen, digits = totals.tolist()  # waits for the last step
    elapsed = time.perf_counter() - start
    return {
        "train_loss": loss_sum / seen,
        "train_margin_loss": margin / seen,
        "train_reconstruction_loss": reconstruction / seen,
        "train_accuracy": correct_sum / max(digits, 1.0),
        "images_per_s": seen / elapsed,
    }


@torch.no_grad()
def evaluate_split(
    model: CapsNet, split: Split, device: torch.device, batch_size: int = 500
) -> dict[str, float]:
    """Accuracy and loss on a split, decoding the longest capsule as at inference."""
    model.eval()
    images_all, labels_all = split.tensors()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(split), batch_size):
        images = images_all[start : start + batch_size].to(device)
        labels = labels_all[start : start + batch_size].to(device)
        out = model(images)
        loss_sum += capsnet_loss(out, images, labels, model.config).total.item() * len(labels)
        correct += (out.lengths.argmax(1) == labels).sum().item()
    return {"accuracy": correct / len(split), "loss": loss_sum / len(split)}
