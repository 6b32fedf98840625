"""The evaluation's pictures: the confusion matrix and a run's training curves (matplotlib, a
training extra, so serving never imports it)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def plot_confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    """Log-scaled counts so the few off-diagonal errors stay visible beside the diagonal."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(np.log1p(matrix), cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if matrix[row, col] > matrix.max() / 2 else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(metrics_log: Path, path: Path, validation: str = "validation") -> None:
    """Loss (total, margin) and train/validation accuracy per epoch, and the weight average's
    validation accuracy if the run kept one; `validation` names that curve, so a `--full-train`
    run's plot does not pass its training images off as held out."""
    records = [json.loads(line) for line in metrics_log.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in records], label="train total")
    loss_ax.plot(epochs, [r["train_margin_loss"] for r in records], label="train margin")
    loss_ax.plot(epochs, [r["val_loss"] for r in records], label=f"{validation} total")
    loss_ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    acc_ax.plot(epochs, [100 * r["train_accuracy"] for r in records], label="train")
    acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in records], label=validation)
    averaged = [r for r in records if "swa_val_accuracy" in r]  # a --swa-start run's average
    if averaged:
        acc_ax.plot(
            [r["epoch"] for r in averaged],
            [100 * r["swa_val_accuracy"] for r in averaged],
            label=f"weight average, {validation}",
        )
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
