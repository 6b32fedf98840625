"""Is it a digit? The model's own evidence: how well it redraws the input, and how typical of a
digit its capsules' poses are.

The decoder redraws the input from the winning capsule's 16 numbers alone (section 4.1 of the
CapsNet paper), so a digit the model understands comes back close to itself and much else (a
letter, a scribble, a photograph) does not: the test of DARCCC (Frosst, Sabour & Hinton 2018),
which flags an input whose distance to its reconstruction exceeds a threshold set on clean
held-out digits. The distance here is the summed squared error over the 28x28 pixels in [0, 1],
the quantity the training's reconstruction loss scales: 0 for a perfect redrawing, 784 at most.

A redrawing can be close for the wrong reason (a square redrawn as a 0, a faint photograph as a
faint blur), so the rule also asks for a long winning capsule (eq. 1: the probability that its
digit is present) and for poses like a held-out digit's: the Mahalanobis distance of the ten
capsules' poses to the nearest digit class's mean, with the covariance shared by the classes
(Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
Adversarial Attacks", 2018) and one 16x16 block per capsule. And a digit is written with a pen:
the decoder redraws a filled disc or star as a heavy 0 or 8 closely enough, but no digit's ink
is that deep, so the rule bounds how many erosions the input's ink survives. The statistics and
the four thresholds are measured on digits the model did not train on by `capsnet-calibrate`
and written into the model card under `digit_check`; the service reads them from there with the
weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from model.capsnet import CapsNet

CARD_KEY = "digit_check"
UNIT = (
    "sum over the 28x28 pixels (values in [0, 1]) of the squared difference between the input "
    "and the decoder's reconstruction from the winning capsule"
)
POSE_DISTANCE = (
    "min over the digit classes c of sum over the capsules j of (v_j - mean[c, j])^T "
    "precision[j] (v_j - mean[c, j]): the squared Mahalanobis distance of the (10, 16) poses to "
    "class c's mean pose, the covariance shared by the classes, one 16x16 block per capsule"
)
STROKE_DEPTH = (
    "the number of 3x3 erosions it takes to erase the input's ink (its pixels >= 0.5, outside the "
    "image counted as paper): a straight stroke w pixels wide survives about w / 2"
)
RULE = (
    "is_digit = reconstruction_error <= max_reconstruction_error "
    "and pose_distance <= max_pose_distance "
    "and winning capsule length >= min_capsule_length "
    "and stroke_depth <= max_stroke_depth"
)
INK = 0.5  # a pixel at least half-inked is ink, for the stroke depth


def reconstruction_errors(images: Tensor, reconstructions: Tensor) -> Tensor:
    """(B, 1, 28, 28) twice -> (B,) summed squared pixel error, in fp32."""
    return (reconstructions.float() - images.float()).pow(2).flatten(1).sum(1)


def poses_and_errors(model: CapsNet, images: Tensor) -> tuple[Tensor, Tensor]:
    """One forward pass: the poses (B, 10, 16) and how far the winning capsule's redrawing is
    from each input (B,)."""
    poses = model.poses(images)  # (B, 10, 16)
    return poses, reconstruction_errors(images, model.reconstruct(poses))


def stroke_depths(images: np.ndarray) -> np.ndarray:
    """(N, H, W) inputs in [0, 1] -> (N,) how many 3x3 erosions their ink survives: 1 for a
    hairline, 1-3 for nearly every MNIST digit, 6 for a filled disc 19 pixels across."""
    ink = np.asarray(images) >= INK
    depths = np.zeros(len(ink), np.int64)
    while ink.any():
        depths += ink.any(axis=(1, 2))
        ink = eroded(ink)
    return depths


def eroded(mask: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> the pixels whose 3x3 neighbourhood is all set (beyond the edge is unset)."""
    height, width = mask.shape[1:]
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    out = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            out &= padded[:, dy : dy + height, dx : dx + width]
    return out


@dataclass(frozen=True)
class PoseStatistics:
    """Where held-out digits' poses lie: a mean pose per class and a shared precision per capsule."""

    means: np.ndarray  # (classes, capsules, dims): the mean poses of the inputs each class wins
    precisions: np.ndarray  # (capsules, dims, dims): inverse covariance around the class means

    @classmethod
    def fit(cls, poses: np.ndarray) -> PoseStatistics:
        """(N, classes, dims) poses of held-out digits, grouped by the capsule each one's winner."""
        poses = np.asarray(poses, np.float64)
        winners = np.linalg.norm(poses, axis=-1).argmax(axis=1)  # (N,)
        classes = poses.shape[1]
        overall = poses.mean(axis=0)  # for a class no digit wins (an untrained model)
        means = np.stack([poses[winners == c].mean(axis=0) if (winners == c).any() else overall
                          for c in range(classes)])  # fmt: skip  # (C, C, D)
        centred = poses - means[winners]  # (N, C, D)
        covariances = np.einsum("nji,njk->jik", centred, centred) / len(poses)  # (C, D, D)
        ridge = 1e-6 * np.eye(poses.shape[2])  # a capsule that never moves stays invertible
        return cls(means, np.linalg.inv(covariances + ridge))

    def distances(self, poses: np.ndarray) -> np.ndarray:
        """(N, classes, dims) -> (N,) squared Mahalanobis distance to the nearest class's mean."""
        offsets = np.asarray(poses, np.float64)[:, None] - self.means[None]  # (N, C, C, D)
        # o^T P o per capsule as batched matrix products: a fifth of the time of the same einsum,
        # which numpy runs as one generic loop (this runs on the service's event loop, per batch)
        weighted = (offsets[..., None, :] @ self.precisions)[..., 0, :]  # (N, C, C, D)
        return (weighted * offsets).sum(axis=(-1, -2)).min(axis=1)

    def to_card(self) -> dict[str, Any]:
        return {
            "means": np.round(self.means, 6).tolist(),
            "precisions": np.round(self.precisions, 4).tolist(),
        }

    @classmethod
    def from_card(cls, entry: dict[str, Any]) -> PoseStatistics:
        return cls(np.asarray(entry["means"], np.float64), np.asarray(entry["precisions"], np.float64))


@dataclass(frozen=True)
class Evidence:
    """The four numbers the rule weighs, for each of N inputs."""

    errors: np.ndarray  # reconstruction errors
    distances: np.ndarray  # pose distances
    lengths: np.ndarray  # winning capsule lengths
    depths: np.ndarray  # stroke depths

    @classmethod
    def of(
        cls, images: np.ndarray, poses: np.ndarray, errors: np.ndarray, statistics: PoseStatistics
    ) -> Evidence:
        """From inputs (N, H, W), their poses (N, classes, dims) and errors (N,)."""
        distances, lengths = statistics.distances(poses), winning_lengths(poses)
        return cls(np.asarray(errors), distances, lengths, stroke_depths(images))


@dataclass(frozen=True)
class DigitRule:
    """An input is a digit when the model redraws it closely, its poses are a digit's and its
    strokes are a pen's."""

    max_reconstruction_error: float
    max_pose_distance: float
    min_capsule_length: float
    max_stroke_depth: int
    pose_statistics: PoseStatistics
    false_alarm_rate: float  # the fraction of held-out digits the four thresholds flag together
    calibration: dict[str, Any] = field(default_factory=dict)  # which images set them, what they measured

    def is_digit(self, evidence: Evidence) -> np.ndarray:
        """(N,) bool: every one of the four within its threshold."""
        return (
            (evidence.errors <= self.max_reconstruction_error)
            & (evidence.distances <= self.max_pose_distance)
            & (evidence.lengths >= self.min_capsule_length)
            & (evidence.depths <= self.max_stroke_depth)
        )

    def evidence(self, images: np.ndarray, poses: np.ndarray, errors: np.ndarray) -> Evidence:
        """What the rule weighs, from inputs (N, H, W), their poses (N, classes, dims) and errors (N,)."""
        return Evidence.of(images, poses, errors, self.pose_statistics)

    def judge(self, images: np.ndarray, poses: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """The rule on one forward pass: inputs (N, H, W), poses (N, classes, dims) and errors (N,)
        -> (N,) bool."""
        return self.is_digit(self.evidence(images, poses, errors))

    def to_card(self) -> dict[str, Any]:
        return {
            "rule": RULE,
            "reconstruction_error_unit": UNIT,
            "pose_distance": POSE_DISTANCE,
            "max_reconstruction_error": self.max_reconstruction_error,
            "max_pose_distance": self.max_pose_distance,
            "min_capsule_length": self.min_capsule_length,
            "stroke_depth": STROKE_DEPTH,
            "max_stroke_depth": self.max_stroke_depth,
            "false_alarm_rate": self.false_alarm_rate,
            "calibration": self.calibration,
            "pose_statistics": self.pose_statistics.to_card(),
        }

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> DigitRule | None:
        """The rule recorded in a model card, or None for weights that were never calibrated."""
        entry = card.get(CARD_KEY)
        if entry is None:
            return None
        if "max_stroke_depth" not in entry:
            raise ValueError(
                f"the model card's {CARD_KEY} predates the stroke depth: run capsnet-calibrate again"
            )
        return cls(
            max_reconstruction_error=float(entry["max_reconstruction_error"]),
            max_pose_distance=float(entry["max_pose_distance"]),
            min_capsule_length=float(entry["min_capsule_length"]),
            max_stroke_depth=int(entry["max_stroke_depth"]),
            pose_statistics=PoseStatistics.from_card(entry["pose_statistics"]),
            false_alarm_rate=float(entry["false_alarm_rate"]),
            calibration=dict(entry.get("calibration", {})),
        )


def calibrate(
    images: np.ndarray, poses: np.ndarray, errors: np.ndarray, false_alarm_rate: float
) -> DigitRule:
    """The pose statistics of these held-out digits (inputs (N, H, W), poses, errors), and
    thresholds that together flag `false_alarm_rate` of them.

    The stroke depth may be as deep as the deepest of these digits' ink: it flags none of them.
    Each other threshold flags the same share q of the digits (the upper q-quantile of the error
    and of the pose distance, the lower one of the length); q is found by bisection so that the
    inputs flagged by any of them make up the rate.
    """
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    statistics = PoseStatistics.fit(poses)
    evidence = Evidence.of(images, poses, errors, statistics)
    low, high = 0.0, false_alarm_rate
    for _ in range(50):
        share = (low + high) / 2
        rule = rule_at(evidence, statistics, share, false_alarm_rate)
        flagged = 1.0 - rule.is_digit(evidence).mean()
        low, high = (share, high) if flagged <= false_alarm_rate else (low, share)
    return rule_at(evidence, statistics, low, false_alarm_rate)


def rule_at(evidence: Evidence, statistics: PoseStatistics, share: float, rate: float) -> DigitRule:
    """The thresholds that each flag `share` of these digits, and the depth that flags none."""
    return DigitRule(
        max_reconstruction_error=float(np.quantile(evidence.errors, 1.0 - share)),
        max_pose_distance=float(np.quantile(evidence.distances, 1.0 - share)),
        min_capsule_length=float(np.quantile(evidence.lengths, share)),
        max_stroke_depth=int(evidence.depths.max()),
        pose_statistics=statistics,
        false_alarm_rate=rate,
    )


def winning_lengths(poses: np.ndarray) -> np.ndarray:
    """(N, classes, dims) -> (N,): the longest capsule's length, the winner's probability (eq. 1)."""
    return np.linalg.norm(np.asarray(poses), axis=-1).max(axis=-1)
