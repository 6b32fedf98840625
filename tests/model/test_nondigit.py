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
from model.nondigit import CARD_KEY, DigitRule, PoseStatistics, calibrate, poses_and_errors


def digit_like_poses(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 10, 16) poses whose winner is a long capsule near its class's mean."""
    poses = rng.normal(0, 0.02, (count, 10, 16))
    winners = rng.integers(0, 10, count)
    poses[np.arange(count), winners, 0] += 0.9
    return poses


def test_calibration_flags_the_chosen_share_of_the_digits_it_was_set_on() -> None:
    rng = np.random.default_rng(0)
    poses, errors = digit_like_poses(rng, 5000), rng.gamma(4.0, 4.0, 5000)
    rule = calibrate(poses, errors, 0.02)
    flagged = 1.0 - rule.judge(poses, errors).mean()
    assert 0.019 <= flagged <= 0.02
    distances = rule.pose_statistics.distances(poses)
    assert (errors > rule.max_reconstruction_error).any() and (distances > rule.max_pose_distance).any()


def test_poses_unlike_the_calibration_digits_are_far_and_flagged_even_when_redrawn_closely() -> None:
    rng = np.random.default_rng(1)
    rule = calibrate(digit_like_poses(rng, 2000), rng.gamma(4.0, 4.0, 2000), 0.02)
    odd = digit_like_poses(rng, 4)
    odd[0, :, 0] = 0.6  # every capsule half-long: no single digit present
    odd[1, :, 5] += 0.5  # a long winner in an unusual pose
    odd[2] *= 0.5  # a digit's pose, but short: the model is not sure any digit is there
    errors = np.zeros(4)
    assert rule.judge(odd, errors).tolist() == [False, False, False, True]
    assert rule.judge(odd[3:], np.array([rule.max_reconstruction_error + 1])).tolist() == [False]


def test_the_rule_round_trips_through_the_card_and_is_absent_from_an_uncalibrated_one() -> None:
    rng = np.random.default_rng(2)
    poses = digit_like_poses(rng, 500)
    rule = replace(calibrate(poses, rng.gamma(4.0, 4.0, 500), 0.02), calibration={"calibration_half": "even"})
    card = json.loads(json.dumps({CARD_KEY: rule.to_card()}))
    read = DigitRule.from_card(card)
    assert read.max_pose_distance == rule.max_pose_distance and read.calibration == rule.calibration
    distances = rule.pose_statistics.distances(poses)
    np.testing.assert_allclose(read.pose_statistics.distances(poses), distances, rtol=1e-3)
    assert card[CARD_KEY]["rule"].startswith("is_digit = reconstruction_error <=")
    assert DigitRule.from_card({"config": {}}) is None


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
        calibrate(np.ones((10, 10, 16)), np.ones(10), 1.5)


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
