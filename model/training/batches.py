"""A split's tensors on the training device, served in a fresh shuffle every epoch.

MNIST is 188 MB as float32, so it lives on the device and a batch is one indexing operation:
a DataLoader's 128 item fetches and collate per batch starve a GPU. Each epoch's order is a
function of (seed, epoch), so a resumed run repeats it; under DDP every process takes every
world_size-th image of the same permutation (as DistributedSampler does), all the same count.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from model.data import Split
from model.training.distributed import Distributed


class ShuffledBatches:
    """(images, labels) batches of this process's share of `split`, reshuffled per epoch."""

    def __init__(
        self, split: Split, batch_size: int, seed: int, dist_info: Distributed, device: torch.device
    ) -> None:
        self.images, self.labels = (t.to(device) for t in split.tensors())  # (N, 1, 28, 28), (N,)
        self.batch_size, self.seed, self.dist_info = batch_size, seed, dist_info
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed * 100_003 + epoch)

    def _per_process(self) -> int:
        return len(self.labels) // self.dist_info.world_size

    def __len__(self) -> int:
        return -(-self._per_process() // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.labels), generator=self.generator)
        world = self.dist_info.world_size
        mine = order[self.dist_info.rank :: world][: self._per_process()].to(self.labels.device)
        for batch in mine.split(self.batch_size):
            yield self.images[batch], self.labels[batch]


def make_loader(
    split: Split,
    batch_size: int,
    seed: int,
    dist_info: Distributed,
    device: torch.device | None = None,
) -> ShuffledBatches:
    """The training batches of `split`, on `device` (the CPU if none)."""
    return ShuffledBatches(split, batch_size, seed, dist_info, device or torch.device("cpu"))


def set_epoch(loader: ShuffledBatches, seed: int, epoch: int) -> None:
    """Makes each epoch's shuffle a function of (seed, epoch), so a resumed run repeats it."""
    loader.seed = seed
    loader.set_epoch(epoch)
