"""The digit check in the API: `reconstruction_error` and `is_digit` per prediction, thresholds read
from the model card, `reject_non_digits=true` as a 422, a counter of flagged inputs, and the same
two answers from the Open Inference Protocol and from `capsnet-predict`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.predict_cli import main as predict
from model.checkpoint import model_card_path, read_model_card
from model.nondigit import CARD_KEY, DigitRule, PoseStatistics


def with_rule(small_weights: Path, tmp_path: Path, max_error: float, max_distance: float) -> Path:
    """A copy of the small weights whose card carries a digit check with these thresholds (and
    poses measured as all-zero, with unit covariance)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    weights = tmp_path / "checked.safetensors"
    shutil.copy(small_weights, weights)
    card = read_model_card(small_weights)
    statistics = PoseStatistics(np.zeros((10, 10, 16)), np.tile(np.eye(16), (10, 1, 1)))
    rule = DigitRule(max_error, max_distance, 0.0, 28, statistics, 0.02, {"calibration_half": "a test"})
    card[CARD_KEY] = rule.to_card()
    model_card_path(weights).write_text(json.dumps(card))
    return weights


@pytest.fixture
def upload(png_bytes, digit_image) -> dict:
    return {"file": ("d.png", png_bytes(digit_image), "image/png")}


def test_the_thresholds_are_read_from_the_model_card(make_client, small_weights, tmp_path, upload) -> None:
    lenient = make_client(weights=with_rule(small_weights, tmp_path / "a", 784.0, 1e9))
    strict = make_client(weights=with_rule(small_weights, tmp_path / "b", 0.0, 1e9))
    [answer] = lenient.post("/v1/predict", files=upload).json()["predictions"]
    [refused] = strict.post("/v1/predict", files=upload).json()["predictions"]
    assert answer["is_digit"] is True and refused["is_digit"] is False
    assert answer["reconstruction_error"] > 0
    assert answer["reconstruction_error"] == pytest.approx(refused["reconstruction_error"])
    assert strict.get("/v1/model").json()["digit_check"]["max_reconstruction_error"] == 0.0


def test_uncalibrated_weights_answer_is_digit_null_and_never_refuse(client: TestClient, upload) -> None:
    [p] = client.post("/v1/predict", files=upload, params={"reject_non_digits": "true"}).json()["predictions"]
    assert p["is_digit"] is None and p["reconstruction_error"] >= 0
    assert client.get("/v1/model").json()["digit_check"] is None


def test_reject_non_digits_answers_422_not_a_digit_with_the_distance(
    make_client, small_weights, tmp_path, upload
) -> None:
    client = make_client(weights=with_rule(small_weights, tmp_path, 0.0, 0.0))
    for route in ("/v1/predict", "/v1/capsules"):
        r = client.post(route, files=upload, params={"reject_non_digits": "true"})
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "not_a_digit" and "do not look like a digit" in error["message"]
        [detail] = error["details"]
        assert detail["index"] == 0 and detail["max_reconstruction_error"] == 0.0
        assert detail["reconstruction_error"] > 0 and detail["pose_distance"] > detail["max_pose_distance"]
        assert 0 <= detail["capsule_length"] <= 1 and detail["min_capsule_length"] == 0.0
        assert 1 <= detail["stroke_depth"] <= detail["max_stroke_depth"] == 28


def test_by_default_a_non_digit_is_answered_with_is_digit_false_and_counted(
    make_client, small_weights, tmp_path, upload
) -> None:
    client = make_client(weights=with_rule(small_weights, tmp_path, 0.0, 0.0))
    [capsules] = client.post("/v1/capsules", files=upload).json()["capsules"]
    assert capsules["is_digit"] is False and capsules["reconstruction_error"] > 0
    client.post("/v1/predict", files=upload)
    metrics = client.get("/metrics").text
    assert "capsnet_non_digit_inputs_total 2.0" in metrics


def v2_infer(client: TestClient, image: np.ndarray, outputs: list[str]) -> dict[str, list]:
    name = client.get("/v1/model").json()["name"]
    request = {
        "inputs": [
            {"name": "images", "datatype": "UINT8", "shape": [1, 1, *image.shape], "data": [[image.tolist()]]}
        ],
        "outputs": [{"name": output} for output in outputs],
    }
    r = client.post(f"/v2/models/{name}/infer", json=request)
    assert r.status_code == 200, r.text
    return {out["name"]: out["data"] for out in r.json()["outputs"]}


def test_v2_lists_and_answers_is_digit_and_reconstruction_error_as_v1_does(
    make_client, small_weights, tmp_path, digit_image, png_bytes
) -> None:
    client = make_client(weights=with_rule(small_weights, tmp_path, 0.0, 0.0))
    name = client.get("/v1/model").json()["name"]
    listed = client.get(f"/v2/models/{name}").json()["outputs"]
    assert {"name": "is_digit", "datatype": "BOOL", "shape": [-1]} in listed
    assert {"name": "reconstruction_error", "datatype": "FP32", "shape": [-1]} in listed
    answer = v2_infer(client, digit_image, ["is_digit", "reconstruction_error"])
    upload = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    [v1] = client.post("/v1/predict", files=upload, params={"preprocess": "none"}).json()["predictions"]
    assert answer["is_digit"] == [False] == [v1["is_digit"]]
    assert answer["reconstruction_error"] == [pytest.approx(v1["reconstruction_error"], rel=1e-5)]


def test_v2_has_no_is_digit_output_for_uncalibrated_weights(client: TestClient, digit_image) -> None:
    name = client.get("/v1/model").json()["name"]
    assert "is_digit" not in [out["name"] for out in client.get(f"/v2/models/{name}").json()["outputs"]]
    assert v2_infer(client, digit_image, ["reconstruction_error"])["reconstruction_error"][0] > 0


def test_capsnet_predict_reports_the_cards_verdict_in_text_and_json(
    small_weights, tmp_path, digit_image, png_bytes, capsys
) -> None:
    image = tmp_path / "d.png"
    image.write_bytes(png_bytes(digit_image))
    strict = with_rule(small_weights, tmp_path / "strict", 0.0, 0.0)
    predict([str(image), "--weights", str(strict), "--json"])
    [found] = json.loads(capsys.readouterr().out)["predictions"]
    assert found["is_digit"] is False and found["reconstruction_error"] > 0
    predict([str(image), "--weights", str(with_rule(small_weights, tmp_path / "lenient", 784.0, 1e9))])
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "is_digit" and line.split()[3] == "yes"
    predict([str(image), "--weights", str(small_weights), "--json"])
    assert json.loads(capsys.readouterr().out)["predictions"][0]["is_digit"] is None
