"""The digit check's rule: calibrated on held-out digits, recorded in the card, read back from it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.calibrate import halves, run
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import model_card_path, save_weights
from model.data import Mnist
from model.nondigit import CARD_KEY, DigitRule, PoseStatistics, calibrate, poses_and_errors, stroke_depths


def digit_like_poses(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 10, 16) poses whose winner is a long capsule near its class's mean."""
    poses = rng.normal(0, 0.02, (count, 10, 16))
    winners = rng.integers(0, 10, count)
    poses[np.arange(count), winners, 0] += 0.9
    return poses


def pen_strokes(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 28, 28) inputs inked like MNIST digits: a bar 1 to 5 pixels wide, most 2 or 3."""
    images = np.zeros((count, 28, 28), np.float32)
    for image, width in zip(
        images, rng.choice([1, 2, 3, 4, 5], count, p=[0.1, 0.4, 0.4, 0.09, 0.01]), strict=True
    ):
        image[4:24, 12 : 12 + width] = 1.0
    return images


def filled_disc(radius: float) -> np.ndarray:
    y, x = np.mgrid[:28, :28]
    return (((y - 13.5) ** 2 + (x - 13.5) ** 2) <= radius**2).astype(np.float32)


def test_calibration_flags_the_chosen_share_of_the_digits_it_was_set_on() -> None:
    rng = np.random.default_rng(0)
    images, poses, errors = pen_strokes(rng, 5000), digit_like_poses(rng, 5000), rng.gamma(4.0, 4.0, 5000)
    rule = calibrate(images, poses, errors, 0.02)
    flagged = 1.0 - rule.judge(images, poses, errors).mean()
    assert 0.019 <= flagged <= 0.02
    e = rule.evidence(images, poses, errors)
    assert (e.errors > rule.max_reconstruction_error).any() and (e.distances > rule.max_pose_distance).any()
    assert rule.max_stroke_depth == e.depths.max() == 3  # as deep as the deepest bars (5 pixels wide)


def test_poses_unlike_the_calibration_digits_are_far_and_flagged_even_when_redrawn_closely() -> None:
    rng = np.random.default_rng(1)
    rule = calibrate(pen_strokes(rng, 2000), digit_like_poses(rng, 2000), rng.gamma(4.0, 4.0, 2000), 0.02)
    odd = digit_like_poses(rng, 4)
    odd[0, :, 0] = 0.6  # every capsule half-long: no single digit present
    odd[1, :, 5] += 0.5  # a long winner in an unusual pose
    odd[2] *= 0.5  # a digit's pose, but short: the model is not sure any digit is there
    images, errors = pen_strokes(rng, 4), np.zeros(4)
    assert rule.judge(images, odd, errors).tolist() == [False, False, False, True]
    assert rule.judge(images[3:], odd[3:], np.array([rule.max_reconstruction_error + 1])).tolist() == [False]


def test_ink_deeper_than_any_pen_stroke_is_flagged_however_well_it_is_redrawn() -> None:
    rng = np.random.default_rng(3)
    rule = calibrate(pen_strokes(rng, 2000), digit_like_poses(rng, 2000), rng.gamma(4.0, 4.0, 2000), 0.02)
    images = np.stack([pen_strokes(rng, 1)[0], filled_disc(9.0)])
    assert rule.judge(images, digit_like_poses(rng, 2), np.zeros(2)).tolist() == [True, False]


def test_the_stroke_depth_is_the_number_of_erosions_the_ink_survives() -> None:
    images = np.zeros((5, 28, 28), np.float32)
    images[1, 5:20, 10] = 1.0  # a hairline
    images[2, 5:20, 10:13] = 1.0  # a 3-pixel stroke
    images[3] = filled_disc(9.0)  # 19 pixels across; a 3x3 erosion eats its rim diagonally too
    images[4, 5:20, 10:13] = 0.49  # too faint to be ink
    assert stroke_depths(images).tolist() == [0, 1, 2, 6, 0]
    full = np.ones((1, 28, 28), np.float32)  # beyond the edge is paper: ink to the edge still erodes
    assert stroke_depths(full).tolist() == [14]


def test_the_rule_round_trips_through_the_card_and_is_absent_from_an_uncalibrated_one() -> None:
    rng = np.random.default_rng(2)
    images, poses = pen_strokes(rng, 500), digit_like_poses(rng, 500)
    rule = replace(
        calibrate(images, poses, rng.gamma(4.0, 4.0, 500), 0.02), calibration={"calibration_half": "even"}
    )
    card = json.loads(json.dumps({CARD_KEY: rule.to_card()}))
    read = DigitRule.from_card(card)
    assert read.max_pose_distance == rule.max_pose_distance and read.calibration == rule.calibration
    assert read.max_stroke_depth == rule.max_stroke_depth
    distances = rule.pose_statistics.distances(poses)
    np.testing.assert_allclose(read.pose_statistics.distances(poses), distances, rtol=1e-3)
    assert card[CARD_KEY]["rule"].startswith("is_digit = reconstruction_error <=")
    assert DigitRule.from_card({"config": {}}) is None


def test_a_card_calibrated_before_the_stroke_depth_asks_for_calibration_again() -> None:
    rng = np.random.default_rng(2)
    entry = calibrate(
        pen_strokes(rng, 500), digit_like_poses(rng, 500), rng.gamma(4.0, 4.0, 500), 0.02
    ).to_card()
    del entry["max_stroke_depth"]
    with pytest.raises(ValueError, match="run capsnet-calibrate again"):
        DigitRule.from_card({CARD_KEY: entry})


def test_the_reconstruction_error_is_the_summed_squared_distance_to_the_winners_redrawing() -> None:
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        poses, errors = poses_and_errors(model, images)
        expected = (model.reconstruct(poses) - images).pow(2).sum(dim=(1, 2, 3))
    assert torch.allclose(errors, expected)


def test_calibrate_command_sets_the_thresholds_on_even_test_images_and_writes_the_card(
    tmp_path: Path, mnist: Mnist
) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "small.safetensors"
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4))
    save_weights(model, weights, {"evaluation": {"x": 1}})
    entry = run(["--weights", str(weights), "--limit", "200", "--device", "cpu", "--false-alarm-rate", "0.1"])
    card = json.loads(model_card_path(weights).read_text())
    assert card[CARD_KEY] == entry and card["evaluation"] == {"x": 1}  # the rest of the card is kept
    assert entry["false_alarm_rate"] == 0.1 and "even-numbered" in entry["calibration"]["calibration_half"]
    calibration_half, measurement_half = halves(mnist.test.head(200))
    assert np.array_equal(calibration_half.images[1], mnist.test.images[2])
    assert np.array_equal(measurement_half.images[1], mnist.test.images[3])


def test_a_false_alarm_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="false_alarm_rate"):
        calibrate(np.zeros((10, 28, 28)), np.ones((10, 10, 16)), np.ones(10), 1.5)


def test_the_pose_distance_is_the_squared_mahalanobis_distance_to_the_nearest_class_mean() -> None:
    rng = np.random.default_rng(1)
    statistics = PoseStatistics.fit(digit_like_poses(rng, 2000))
    poses = digit_like_poses(rng, 7)
    expected = np.array(
        [
            min(
                sum(
                    (pose[j] - statistics.means[c, j])
                    @ statistics.precisions[j]
                    @ (pose[j] - statistics.means[c, j])
                    for j in range(10)
                )
                for c in range(10)
            )
            for pose in poses
        ]
    )
    np.testing.assert_allclose(statistics.distances(poses), expected, rtol=1e-9)
