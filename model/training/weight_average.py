"""Stochastic weight averaging (Izmailov et al. 2018) of every step's weights from an epoch on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel


@dataclass
class WeightAverage:
    """The mean of the weights after every step from `start_epoch` on, while SWALR holds the rate,
    is meant to land nearer the middle of a wide minimum than any one step's weights
    (docs/training-log.md: no gain on MNIST here). CapsNet has no batch norm, so nothing needs
    recomputing for the average."""

    start_epoch: int
    averaged: AveragedModel
    scheduler: SWALR

    @classmethod
    def create(
        cls, model: nn.Module, optimizer: torch.optim.Optimizer, start_epoch: int, lr: float
    ) -> WeightAverage:
        """The average starts as a copy of `model`'s weights; SWALR takes over `optimizer`'s rate."""
        return cls(start_epoch, AveragedModel(model), SWALR(optimizer, swa_lr=lr, anneal_epochs=1))

    def covers(self, epoch: int) -> bool:
        return epoch >= self.start_epoch

    @property
    def steps(self) -> int:
        return int(self.averaged.n_averaged.item())

    def state_dict(self) -> dict[str, Any]:
        return {"swa_model": self.averaged.state_dict(), "swa_scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "swa_model" in state:  # absent if the run was killed before its first averaged epoch
            self.averaged.load_state_dict(state["swa_model"])
            self.scheduler.load_state_dict(state["swa_scheduler"])
