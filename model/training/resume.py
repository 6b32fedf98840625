"""The resume checkpoint: what a killed run needs to go on as if it had never stopped.

Rank 0 writes `checkpoint.pt` atomically after each epoch's weights: model, optimizer, scheduler,
the weight average if any, the CPU RNG state, the epoch, the best validation accuracy, what the
run began from, its command line and its per-epoch log. `--resume` reads the same keys; a
checkpoint from before the log or the origin travelled inside it still resumes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.capsnet import CapsNet
from model.checkpoint import load_training_state, save_training_state
from model.training.run_dir import CHECKPOINT, check_same_run, read_metrics, recipe_of
from model.training.warm_start import lineage
from model.training.weight_average import WeightAverage


@dataclass
class TrainingState:
    """What changes from step to step: the weights, the optimizer's moments, the rates."""

    model: CapsNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ExponentialLR
    swa: WeightAverage | None


@dataclass
class Progress:
    """How far the run has got: its last finished epoch, best validation accuracy and log.

    `origin` is what the run began from, kept in the checkpoint so that a weights file changed
    since cannot rewrite it.
    """

    origin: dict[str, Any]
    epoch: int = 0
    best_val_accuracy: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)


def start_or_resume(args: argparse.Namespace, state: TrainingState, is_main: bool) -> Progress:
    """A fresh run's progress, or with `--resume` and a checkpoint, the checkpoint's restored."""
    path = args.out_dir / CHECKPOINT
    saved = load_training_state(path) if args.resume and path.exists() else {}
    origin = saved.get("origin") or lineage(args.init_weights)
    if not saved:
        return Progress(origin)
    check_same_run(saved.get("recipe"), recipe_of(args), args.out_dir)
    restore(saved, state, args.lr_decay)
    records = saved.get("metrics") or read_metrics(args.out_dir, saved["epoch"])
    if is_main:
        print(f"resuming from {path} after epoch {saved['epoch']}")
    return Progress(origin, saved["epoch"], saved["best_val_accuracy"], records)


def restore(saved: dict[str, Any], state: TrainingState, lr_decay: float) -> None:
    """Loads a checkpoint into `state`; the command line's `lr_decay` rules from here on."""
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scheduler.gamma = lr_decay
    if state.swa is not None:
        state.swa.load_state_dict(saved)
    torch.set_rng_state(saved["rng_cpu"])


def save_checkpoint(path: Path, state: TrainingState, progress: Progress, recipe: dict[str, Any]) -> None:
    """Writes the checkpoint of `progress.epoch` atomically, its log inside it."""
    save_training_state(
        path,
        {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            **(state.swa.state_dict() if state.swa is not None else {}),
            "rng_cpu": torch.get_rng_state(),
            "epoch": progress.epoch,
            "best_val_accuracy": progress.best_val_accuracy,
            "origin": progress.origin,
            "recipe": recipe,
            "metrics": progress.records,
        },
    )
