"""Is it a digit? The reconstruction test of DARCCC (Frosst, Sabour & Hinton 2018).

The decoder redraws the input from the winning capsule's 16 numbers alone (section 4.1 of the
CapsNet paper), so a digit the model understands comes back close to itself and anything else
(a letter, a shape, a photograph) does not. DARCCC flags an input whose distance to its
reconstruction exceeds a threshold set on clean held-out digits. The distance here is the summed
squared error over the 28x28 pixels in [0, 1], the quantity the training's reconstruction loss
scales: 0 for a perfect redrawing, 784 at most. Reconstruction alone misses what the model cannot
read at all (a crop of a photograph comes out as a faint input and a faint blur, close to each
other), so the rule also asks for a long winning capsule (eq. 1: the length is the probability
that the digit is present).

The rule's numbers are not constants: `capsnet-calibrate` measures them on digits the model did
not train on and writes them into the model card under `digit_check`, and the service reads them
from there with the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from model.capsnet import CapsNet

CARD_KEY = "digit_check"
UNIT = (
    "sum over the 28x28 pixels (values in [0, 1]) of the squared difference between the input "
    "and the decoder's reconstruction from the winning capsule"
)
RULE = (
    "is_digit = reconstruction_error <= max_reconstruction_error "
    "and winning capsule length >= min_capsule_length"
)


def reconstruction_errors(images: Tensor, reconstructions: Tensor) -> Tensor:
    """(B, 1, 28, 28) twice -> (B,) summed squared pixel error, in fp32."""
    return (reconstructions.float() - images.float()).pow(2).flatten(1).sum(1)


def poses_and_errors(model: CapsNet, images: Tensor) -> tuple[Tensor, Tensor]:
    """One forward pass: the poses (B, 10, 16) and how far the winning capsule's redrawing is
    from each input (B,)."""
    poses = model.poses(images)  # (B, 10, 16)
    return poses, reconstruction_errors(images, model.reconstruct(poses))


@dataclass(frozen=True)
class DigitRule:
    """An input is a digit when the model redraws it closely and its winning capsule is long.

    The redrawing catches what the model confidently misreads (a letter, a square redrawn as a
    0); the capsule length catches what it cannot read at all (photographs, textures, noise),
    whose redrawing is a faint blur that can sit close to a faint input.
    """

    max_reconstruction_error: float
    min_capsule_length: float
    false_alarm_rate: float  # the fraction of held-out digits the two thresholds flag together
    calibration: dict[str, Any] = field(default_factory=dict)  # which images set them, what they measured

    def is_digit(self, errors: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`errors` (N,) and the winning capsules' `lengths` (N,) -> (N,) bool."""
        return (np.asarray(errors) <= self.max_reconstruction_error) & (
            np.asarray(lengths) >= self.min_capsule_length
        )

    def judge(self, poses: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """The rule on model outputs: poses (N, num_classes, digit_dim) and errors (N,) -> (N,) bool."""
        return self.is_digit(errors, np.linalg.norm(np.asarray(poses), axis=-1).max(axis=-1))

    def to_card(self) -> dict[str, Any]:
        return {"rule": RULE, "reconstruction_error_unit": UNIT, **asdict(self)}

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> DigitRule | None:
        """The rule recorded in a model card, or None for weights that were never calibrated."""
        entry = card.get(CARD_KEY)
        if entry is None:
            return None
        return cls(
            max_reconstruction_error=float(entry["max_reconstruction_error"]),
            min_capsule_length=float(entry["min_capsule_length"]),
            false_alarm_rate=float(entry["false_alarm_rate"]),
            calibration=dict(entry.get("calibration", {})),
        )


def calibrate(errors: np.ndarray, lengths: np.ndarray, false_alarm_rate: float) -> DigitRule:
    """Thresholds that together flag `false_alarm_rate` of these held-out digits.

    Each threshold flags the same share q of them (the error's upper q-quantile, the length's
    lower one); q is found by bisection so that the inputs flagged by either make up the rate.
    """
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    low, high = 0.0, false_alarm_rate
    for _ in range(50):
        share = (low + high) / 2
        rule = rule_at(errors, lengths, share, false_alarm_rate)
        flagged = 1.0 - rule.is_digit(errors, lengths).mean()
        low, high = (share, high) if flagged <= false_alarm_rate else (low, share)
    return rule_at(errors, lengths, low, false_alarm_rate)


def rule_at(errors: np.ndarray, lengths: np.ndarray, share: float, false_alarm_rate: float) -> DigitRule:
    """The thresholds that each flag `share` of these digits."""
    return DigitRule(
        max_reconstruction_error=float(np.quantile(errors, 1.0 - share)),
        min_capsule_length=float(np.quantile(lengths, share)),
        false_alarm_rate=false_alarm_rate,
    )
