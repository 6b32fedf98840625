"""A learned digit check, measured against the card's rule: a logistic score over the model's own
evidence, fitted on non-digits drawn from one seed and measured on those of another.

Features of an input, all from its forward pass and the card's pose statistics (23 in all):
log(1 + reconstruction error), log(1 + pose distance), the stroke depth, the ten capsule lengths
sorted, and the ten capsules' own terms of the pose distance (at the nearest class,
log(1 + term)) sorted. The score is
fitted (L-BFGS, a little L2) with the digits of the calibration half (MNIST test digits as PNGs,
as canvas exports and as photos) against the non-digit groups (the digit-like letters left out),
every group weighing the same, all drawn from `--fit-seed`. Its threshold flags
`--false-alarm-rate` of the whole calibration half sent as PNGs. The table then measures it, and
the card's rule beside it, on the sets `bench/nondigit_report.py` reports: measurement-half
digits and the non-digits of `--seed`. Nothing the table measures was fitted on.

    python -m bench.nondigit_learned [--per-group 300] [--digits 1000] [--seed 0] [--fit-seed 1]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from app.imaging import Layout
from bench.nondigit_report import (
    ROC_LEFT_OUT,
    TARGETS,
    Measured,
    add_set_options,
    flagged_share,
    measure,
    measure_sets,
)
from bench.nondigit_sets import Group, mnist_files
from model.calibrate import DEFAULT_RATE, halves
from model.checkpoint import load_weights, read_model_card
from model.data import load_mnist
from model.nondigit import DigitRule, PoseStatistics, stroke_depths

Score = Callable[[np.ndarray], np.ndarray]


def features(m: Measured, statistics: PoseStatistics) -> np.ndarray:
    """(N, 23): the evidence of each input of `m` that reached the model."""
    lengths = np.sort(np.linalg.norm(m.poses, axis=-1), axis=1)  # (N, 10)
    offsets = np.asarray(m.poses, np.float64)[:, None] - statistics.means[None]  # (N, C, C, D)
    terms = ((offsets[..., None, :] @ statistics.precisions)[..., 0, :] * offsets).sum(-1)  # (N, C, C)
    nearest = terms.sum(-1).argmin(axis=1)
    capsule_terms = np.sort(np.log1p(terms[np.arange(len(terms)), nearest]), axis=1)  # (N, C)
    distance = np.log1p(terms.sum(-1).min(axis=1))
    depths = stroke_depths(m.images)
    return np.column_stack([np.log1p(m.errors), distance, depths, lengths, capsule_terms])


def fit(x: np.ndarray, is_digit: np.ndarray, weight: np.ndarray, l2: float = 1e-3) -> Score:
    """Logistic regression on standardised features: higher scores are less like a digit."""
    xs = torch.from_numpy(x)
    mean, std = xs.mean(0), xs.std(0).clamp_min(1e-9)
    xs = (xs - mean) / std
    target = torch.from_numpy((~is_digit).astype(np.float64))
    w = torch.from_numpy(weight / weight.sum())
    theta = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([theta], max_iter=500)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        logits = xs @ theta[:-1] + theta[-1]
        value = (w * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).sum()
        value = value + l2 * theta[:-1].pow(2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    coefficients, bias = theta[:-1].detach(), theta[-1].detach()
    return lambda z: (((torch.from_numpy(z) - mean) / std) @ coefficients + bias).numpy()


def fitted_score(measured: list[Measured], statistics: PoseStatistics) -> Score:
    used = [m for m in measured if m.group.name not in ROC_LEFT_OUT and len(m.errors)]
    x = np.concatenate([features(m, statistics) for m in used])
    is_digit = np.concatenate([np.full(len(m.errors), m.group.is_digit) for m in used])
    weight = np.concatenate([np.full(len(m.errors), 1.0 / len(m.errors)) for m in used])
    return fit(x, is_digit, weight)


def print_table(results: list[Measured], rule: DigitRule, score: Score, threshold: float) -> None:
    print("| group | kind | images | refused | learned score: flagged | card's rule: flagged | target |")
    print("|---|---|---:|---:|---:|---:|---|")
    for m in results:
        answered = int((score(features(m, rule.pose_statistics)) <= threshold).sum()) if len(m.errors) else 0
        learned = (len(m.group.files) - answered) / len(m.group.files)
        sign, bound = TARGETS.get(m.group.name, ("", None))
        target = f"{sign} {100 * bound:.0f}%" if bound is not None else ""
        print(
            f"| {m.group.name} | {'digit' if m.group.is_digit else 'non-digit'} | {len(m.group.files)} | "
            f"{m.refused} | {100 * learned:.1f}% | {100 * flagged_share(m, rule):.1f}% | {target} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_options(p)
    p.add_argument("--fit-seed", type=int, default=1, help="the sets the score is fitted on (default: 1)")
    p.add_argument(
        "--false-alarm-rate", type=float, default=DEFAULT_RATE, help=f"(default: {DEFAULT_RATE}, the card's)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.seed == args.fit_seed:
        raise SystemExit("--seed and --fit-seed must differ: the table measures what was not fitted on")
    rule = DigitRule.from_card(read_model_card(args.weights))
    if rule is None:
        raise SystemExit(f"{args.weights}: the model card has no digit check; run capsnet-calibrate first")
    device = torch.device("cpu")
    model = load_weights(args.weights, device)
    layout = Layout.of_weights(model.config.to_dict(), args.weights)
    calibration_half, measurement_half = halves(load_mnist().test)

    fitted_on = measure_sets(calibration_half.images, args, args.fit_seed, model, device)
    score = fitted_score(fitted_on, rule.pose_statistics)
    calibration = measure(
        Group("calibration half", True, mnist_files(calibration_half.images)), model, device, layout
    )
    threshold = np.quantile(score(features(calibration, rule.pose_statistics)), 1 - args.false_alarm_rate)
    results = measure_sets(measurement_half.images, args, args.seed, model, device)
    print(f"threshold {threshold:.3f}: flags {args.false_alarm_rate:.1%} of the calibration half as PNGs")
    print_table(results, rule, score, threshold)


if __name__ == "__main__":
    main()
