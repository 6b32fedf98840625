"""What a training run prints: a kept progress bar per epoch, one line per epoch, where files went.

Only rank 0 prints; `metrics.jsonl` keeps the full per-epoch record, so these lines can stay
short enough to read.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any, TypeVar

try:
    from tqdm import tqdm
except ModuleNotFoundError as e:  # a serving-only install
    raise SystemExit(f"capsnet-train needs {e.name}: pip install 'capsnet-serve[train]'") from None

from model.training.run_dir import CHECKPOINT, METRICS

Batch = TypeVar("Batch")


def epoch_bar(batches: Iterable[Batch], epoch: int, epochs: int, is_main: bool) -> tqdm[Batch]:
    """A progress bar over the epoch's batches that stays on screen when the epoch ends."""
    return tqdm(
        batches,
        desc=f"epoch {epoch}/{epochs}",
        unit="batch",
        disable=not is_main,
        mininterval=1,
        dynamic_ncols=True,
    )


def show_running(bar: tqdm[Any], loss: float, correct: float, seen: float) -> None:
    """The epoch's running mean loss and accuracy beside its bar, drawn at the bar's next update."""
    bar.set_postfix({"loss": f"{loss / seen:.4f}", "acc": f"{correct / seen:.2%}"}, refresh=False)


def epoch_line(record: dict[str, Any], epochs: int, held_out: bool) -> str:
    """One readable line per epoch; `metrics.jsonl` keeps the full record."""
    valid = "valid" if held_out else "valid (trained on)"
    line = (
        f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
        f"train {record['train_accuracy']:.2%}, {valid} {record['val_accuracy']:.2%}"
    )
    if "swa_val_accuracy" in record:
        line += f", average {record['swa_val_accuracy']:.2%}"
    return f"{line}, lr {record['lr']:.2e}, {record['images_per_s']:.0f} img/s"


def report_outputs(args: argparse.Namespace, best_acc: float, averaged: bool) -> None:
    """Where the run's files are, and which weights to ship."""
    out = args.out_dir
    print(f"last epoch's weights: {out / 'last.safetensors'} (model card {out / 'last.json'})")
    if args.full_train:
        print("  ship these: a --full-train run trains on its validation split, so 'best' means nothing")
    else:
        print(f"best validation ({best_acc:.2%}): {out / 'best.safetensors'}")
    if averaged:
        print(f"weight average: {out / 'swa.safetensors'}")
    print(f"metrics: {out / METRICS}; resume checkpoint: {out / CHECKPOINT}")
    weights = out / ("last" if args.full_train else "best")
    print(
        f"test it: capsnet-evaluate --weights {weights}.safetensors "
        f"--metrics-log {out / METRICS} --out-dir {out / 'report'}"
    )
