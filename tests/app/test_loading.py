"""Start-up: the precision it serves in, a frozen start-up heap, and weights it must not trust or
cannot serve."""

from __future__ import annotations

import gc
import json
import logging

import numpy as np
import pytest
import torch

from app.loading import GEN0_THRESHOLD, UnservableWeights, load_model
from app.settings import Settings
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import model_card_path, save_weights
from model.nondigit import CARD_KEY, DigitRule, PoseStatistics
from model.precision import packs_bf16


def test_model_info_names_the_precision_and_bf16_predicts_like_fp32(
    make_client, png_bytes, digit_image
) -> None:
    files = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    scores = {}
    for precision in ("fp32", "bf16"):
        client = make_client(precision=precision)
        info = client.get("/v1/model").json()
        assert info["precision"] == precision
        [p] = client.post("/v1/predict", files=files).json()["predictions"]
        scores[precision] = np.array(p["scores"])
    assert np.allclose(scores["bf16"], scores["fp32"], atol=2e-2)


def test_the_start_up_heap_is_frozen_out_of_the_collector_and_young_collections_are_rarer(client) -> None:
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == GEN0_THRESHOLD > 700


def test_model_info_says_when_the_card_does_not_describe_the_weights(
    make_client, small_weights, tmp_path, caplog
) -> None:
    assert make_client().get("/v1/model").json()["card_warning"] is None
    weights = tmp_path / "copied.safetensors"
    weights.write_bytes(small_weights.read_bytes())
    card = json.loads(model_card_path(small_weights).read_text())
    model_card_path(weights).write_text(json.dumps({**card, "weights_sha256": "0" * 64}))
    with caplog.at_level(logging.WARNING, logger="capsnet.serve"):
        warning = make_client(weights=weights).get("/v1/model").json()["card_warning"]
    assert "describes other weights" in warning
    assert warning in caplog.text


def test_weights_the_service_cannot_feed_fail_at_load_with_the_reason(tmp_path) -> None:
    weights = tmp_path / "rgb.safetensors"
    save_weights(CapsNet(CapsNetConfig(in_channels=3, conv1_channels=8, primary_types=2)), weights)
    settings = Settings(weights=weights, device="cpu")
    with pytest.raises(UnservableWeights, match="3 input channels; the service feeds 1"):
        load_model(settings)


def test_a_digit_check_calibrated_before_the_stroke_depth_fails_at_load_with_the_reason(
    small_weights, tmp_path
) -> None:
    weights = tmp_path / "old-card.safetensors"
    weights.write_bytes(small_weights.read_bytes())
    rule = DigitRule(
        30.0, 800.0, 0.7, 5, PoseStatistics(np.zeros((10, 10, 16)), np.tile(np.eye(16), (10, 1, 1))), 0.02
    )
    entry = rule.to_card()
    del entry["max_stroke_depth"]
    card = json.loads(model_card_path(small_weights).read_text())
    model_card_path(weights).write_text(json.dumps({**card, CARD_KEY: entry}))
    with pytest.raises(ValueError, match="run capsnet-calibrate again"):
        load_model(Settings(weights=weights, device="cpu"))


@pytest.mark.skipif(not packs_bf16(torch.device("cpu")), reason="needs bf16 instructions and oneDNN")
def test_auto_on_a_bf16_cpu_serves_bf16_from_packed_convolutions(make_client, png_bytes, digit_image) -> None:
    files = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    client = make_client(precision="auto")
    assert client.get("/v1/model").json()["precision"] == "bf16"
    [auto] = client.post("/v1/predict", files=files).json()["predictions"]
    [fp32] = make_client(precision="fp32").post("/v1/predict", files=files).json()["predictions"]
    assert auto["digit"] == fp32["digit"]
    assert np.allclose(auto["scores"], fp32["scores"], atol=2e-2)
