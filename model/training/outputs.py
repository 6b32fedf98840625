"""The weights each epoch writes, each with a model card that says how they were made.

`last.safetensors` is the latest epoch's, `best.safetensors` the one with the best validation
accuracy so far, and with `--swa-start`, `swa.safetensors` the weight average. The card's
`training` record carries the command line, the per-epoch history across every resume, and what
a warm start began from (docs/weights-format.md).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import torch

from model.capsnet import CapsNet
from model.checkpoint import save_weights
from model.training.resume import Progress
from model.training.run_dir import recipe_of
from model.training.weight_average import WeightAverage


def history(records: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-epoch learning rate and accuracies for the model card, across every resume."""
    keys = ("epoch", "lr", "train_loss", "train_accuracy", "val_accuracy")
    return [{key: record[key] for key in keys} for record in records]


def training_summary(
    args: argparse.Namespace,
    progress: Progress,
    val_acc: float,
    train_size: int,
    averaged_steps: int | None = None,
) -> dict[str, Any]:
    """The card's record of how the weights were made; `recipe` is the last (resumed) command.

    `averaged_steps` marks the weights as a stochastic weight average of that many steps' weights.
    """
    averaging = {} if averaged_steps is None else {"weight_average_of_steps": averaged_steps}
    return {
        "training": {
            "recipe": recipe_of(args),
            "history": history(progress.records),
            "train_images": train_size,
            "epochs_trained": progress.epoch,
            "validation_accuracy": val_acc,
            "validation_held_out": not args.full_train,
            **averaging,
            **progress.origin,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
        }
    }


def save_epoch_weights(
    args: argparse.Namespace,
    model: CapsNet,
    averaging: WeightAverage | None,
    progress: Progress,
    train_size: int,
) -> None:
    """Writes the epoch's weights; raises `progress.best_val_accuracy` when `best` is replaced."""
    record = progress.records[-1]
    summary = training_summary(args, progress, record["val_accuracy"], train_size)
    save_weights(model, args.out_dir / "last.safetensors", summary)
    if record["val_accuracy"] > progress.best_val_accuracy:
        progress.best_val_accuracy = record["val_accuracy"]
        save_weights(model, args.out_dir / "best.safetensors", summary)
    if averaging is not None:
        swa_summary = training_summary(
            args, progress, record["swa_val_accuracy"], train_size, averaging.steps
        )
        save_weights(averaging.averaged.module, args.out_dir / "swa.safetensors", swa_summary)
