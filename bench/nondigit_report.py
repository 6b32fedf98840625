"""Prints, per group of inputs, how often the digit check flags it, and draws its ROC curve.

Every input is an encoded file sent through the service's default preprocessing and the model's
forward pass, and judged by the rule in the model card (`capsnet-calibrate` sets it). The digits
are MNIST test images from the measurement half (odd-numbered), never the calibration half.
"Flagged" means not answered as a digit: `is_digit` false, or refused by preprocessing
(`no_digit_found`), which the table also counts on its own; "err alone", "pose alone", "len
alone" and "depth alone" are the shares each threshold flags by itself.

    python -m bench.nondigit_report [--per-group 300] [--digits 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from app.errors import NoDigitFound
from app.imaging import Layout, prepare
from bench.nondigit_sets import Group, digit_groups, non_digit_groups
from model.calibrate import halves
from model.capsnet import CapsNet
from model.checkpoint import load_weights, read_model_card
from model.data import load_mnist
from model.device import resolve_device
from model.evaluate import DEFAULT_WEIGHTS
from model.nondigit import DigitRule, Evidence, poses_and_errors, stroke_depths

MAX_PIXELS = 4096 * 4096
DEFAULT_ROC = Path("docs/reports/digit_check_roc.png")
TARGETS = {  # the most (digits) or the least (non-digits) share that may be / must be flagged
    "MNIST test digits": ("<=", 0.02),
    "canvas exports of digits": ("<=", 0.05),
    "photos of digits": ("<=", 0.05),
    "letters": (">=", 0.90),
    "shapes": (">=", 0.90),
    "scribbles": (">=", 0.90),
    "photo crops": (">=", 0.90),
}
ROC_LEFT_OUT = {"digit-like letters"}  # an "O" is a 0 to anyone: not counted as a miss on the curve


@dataclass(frozen=True)
class Measured:
    group: Group
    refused: int  # preprocessing found no ink (no_digit_found)
    images: np.ndarray  # (N, 28, 28): the inputs that reached the model
    errors: np.ndarray  # their reconstruction errors
    poses: np.ndarray  # their (N, 10, 16) poses

    def judge(self, rule: DigitRule) -> np.ndarray:
        return rule.judge(self.images, self.poses, self.errors)

    def evidence(self, rule: DigitRule) -> Evidence:
        return rule.evidence(self.images, self.poses, self.errors)


@torch.inference_mode()
def measure(
    group: Group, model: CapsNet, device: torch.device, layout: Layout, batch_size: int = 256
) -> Measured:
    images, refused = [], 0
    for data in group.files:
        try:
            images.append(prepare(data, "auto", MAX_PIXELS, layout))
        except NoDigitFound:
            refused += 1
    errors, poses = [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.stack(images[start : start + batch_size])).unsqueeze(1).to(device)
        pose, error = poses_and_errors(model, x)
        errors.append(error.cpu().numpy())
        poses.append(pose.cpu().numpy())
    return Measured(group, refused, np.stack(images), np.concatenate(errors), np.concatenate(poses))


def flagged_share(m: Measured, rule: DigitRule) -> float:
    answered_as_digit = int(m.judge(rule).sum())
    return (len(m.group.files) - answered_as_digit) / len(m.group.files)  # 50/1000 is exactly 0.05


def verdict(name: str, share: float) -> str:
    if name not in TARGETS:
        return ""
    sign, target = TARGETS[name]
    met = share <= target if sign == "<=" else share >= target
    return f"{sign} {100 * target:.0f}%  {'met' if met else 'MISSED'}"


def print_table(results: list[Measured], rule: DigitRule) -> None:
    print(
        f"rule: reconstruction error <= {rule.max_reconstruction_error:.2f} "
        f"and pose distance <= {rule.max_pose_distance:.2f} "
        f"and winning capsule length >= {rule.min_capsule_length:.4f} "
        f"and stroke depth <= {rule.max_stroke_depth}"
    )
    print(
        f"{'group':27s} {'kind':9s} {'images':>6s} {'refused':>7s} {'median err':>10s} "
        f"{'median pose':>11s} {'err alone':>9s} {'pose alone':>10s} {'len alone':>9s} "
        f"{'depth alone':>11s} {'flagged':>8s}  target"
    )
    for m in results:
        share = flagged_share(m, rule)
        kind = "digit" if m.group.is_digit else "non-digit"
        e = m.evidence(rule)
        median = float(np.median(e.errors)) if len(m.errors) else float("nan")
        median_pose = float(np.median(e.distances)) if len(m.errors) else float("nan")
        alone = [
            float(beyond.sum()) / len(m.group.files)
            for beyond in (
                e.errors > rule.max_reconstruction_error,
                e.distances > rule.max_pose_distance,
                e.lengths < rule.min_capsule_length,
                e.depths > rule.max_stroke_depth,
            )
        ]
        print(
            f"{m.group.name:27s} {kind:9s} {len(m.group.files):6d} {m.refused:7d} {median:10.1f} "
            f"{median_pose:11.0f} {100 * alone[0]:8.1f}% {100 * alone[1]:9.1f}% {100 * alone[2]:8.1f}% "
            f"{100 * alone[3]:10.1f}% {100 * share:7.1f}%  " + verdict(m.group.name, share)
        )


def roc(digit_scores: np.ndarray, other_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False-alarm and detection rates over every threshold on a score (higher: less digit-like)."""
    thresholds = np.unique(np.concatenate([digit_scores, other_scores, [np.inf]]))[::-1]
    false_alarm = np.array([(digit_scores >= t).mean() for t in thresholds])
    detection = np.array([(other_scores >= t).mean() for t in thresholds])
    return false_alarm, detection, float(np.trapezoid(detection, false_alarm))


def rule_score(m: Measured, rule: DigitRule) -> np.ndarray:
    """The rule as one score, flagged above 1: how far past any threshold an input is. Sweeping a
    threshold on it scales the card's thresholds together, through the card's point."""
    e = m.evidence(rule)
    return np.maximum.reduce(
        [
            e.errors / rule.max_reconstruction_error,
            e.distances / rule.max_pose_distance,
            rule.min_capsule_length / e.lengths,
            e.depths / rule.max_stroke_depth,
        ]
    )


def scores(rule: DigitRule) -> dict[str, Callable[[Measured], np.ndarray]]:
    """Each candidate evidence as a score, higher: less digit-like."""
    return {
        "reconstruction error": lambda m: m.errors,
        "pose distance": lambda m: rule.pose_statistics.distances(m.poses),
        "1 - winning capsule length": lambda m: 1.0 - np.linalg.norm(m.poses, axis=-1).max(axis=1),
        "stroke depth": lambda m: stroke_depths(m.images).astype(np.float64),
        "the rule (its thresholds scaled together)": lambda m: rule_score(m, rule),
    }


def print_aucs(results: list[Measured], rule: DigitRule) -> None:
    """Per non-digit group, each score's ROC AUC against the pooled digits (inputs that reached
    the model; those preprocessing refused are flagged whatever the score)."""
    digits = [m for m in results if m.group.is_digit]
    candidates = scores(rule)
    print("ROC AUC against the pooled digits: " + ", ".join(candidates))
    for m in results:
        if m.group.is_digit or not len(m.errors):
            continue
        aucs = [roc(np.concatenate([s(d) for d in digits]), s(m))[2] for s in candidates.values()]
        print(f"{m.group.name:27s} " + " ".join(f"{auc:.3f}" for auc in aucs))


def plot_roc(results: list[Measured], rule: DigitRule, path: Path) -> None:
    digits = [m for m in results if m.group.is_digit]
    others = [m for m in results if not m.group.is_digit and m.group.name not in ROC_LEFT_OUT]
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for label, score in scores(rule).items():
        digit_scores = np.concatenate([score(m) for m in digits])
        fa, det, auc = roc(digit_scores, np.concatenate([score(m) for m in others]))
        print(f"pooled ROC AUC, {label}: {auc:.3f}")
        ax.plot(100 * fa, 100 * det, label=f"{label} (AUC {auc:.3f})")
    fa_point = 1 - np.mean(np.concatenate([m.judge(rule) for m in digits]))
    det_point = 1 - np.mean(np.concatenate([m.judge(rule) for m in others]))
    ax.plot(100 * fa_point, 100 * det_point, "ko", label="the model card's thresholds")
    print(f"the card's point flags {100 * fa_point:.1f}% of these digits, {100 * det_point:.1f}% of the rest")
    ax.set(
        xscale="log",
        xlim=(0.1, 100),
        ylim=(0, 100),
        xlabel="digits flagged (%; MNIST, canvas, photos; log scale)",
        ylabel="non-digits flagged (%)",
        title="Digit check: digits vs letters, shapes, scribbles, photos, textures, noise",
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_set_options(p: argparse.ArgumentParser) -> None:
    """The options that pick the weights and draw the sets, shared with bench/nondigit_learned.py."""
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"(default: {DEFAULT_WEIGHTS})")
    p.add_argument("--per-group", type=int, default=300, help="non-digits per group (default: 300)")
    p.add_argument("--digits", type=int, default=1000, help="held-out MNIST digits per group (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")


def measure_sets(
    digits: np.ndarray, args: argparse.Namespace, seed: int, model: CapsNet, device: torch.device
) -> list[Measured]:
    """`args.digits` of `digits` three ways and `args.per_group` of each non-digit group, drawn
    from `seed`, through the default preprocessing and the model."""
    step = max(1, len(digits) // args.digits)
    groups = digit_groups(digits[::step][: args.digits], seed) + non_digit_groups(seed, args.per_group)
    layout = Layout.of_weights(model.config.to_dict(), args.weights)
    return [measure(group, model, device, layout) for group in groups]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_options(p)
    p.add_argument("--device", default="cpu", help="(default: cpu)")
    p.add_argument("--roc", type=Path, default=DEFAULT_ROC, help=f"(default: {DEFAULT_ROC})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rule = DigitRule.from_card(read_model_card(args.weights))
    if rule is None:
        raise SystemExit(f"{args.weights}: the model card has no digit check; run capsnet-calibrate first")
    device = resolve_device(args.device)
    model = load_weights(args.weights, device)
    _, measurement_half = halves(load_mnist().test)
    results = measure_sets(measurement_half.images, args, args.seed, model, device)
    print_table(results, rule)
    print_aucs(results, rule)
    plot_roc(results, rule, args.roc)
    print(f"ROC curve: {args.roc}")


if __name__ == "__main__":
    main()
