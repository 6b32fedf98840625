"""POST /v1/predict and /v1/capsules: one entry per image, in upload order, through both encodings."""

from __future__ import annotations

import base64
import io

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image


def test_predict_answers_one_entry_per_file_in_upload_order(
    client: TestClient, make_client, png_bytes, digit_image
) -> None:
    images = [digit_image, np.roll(digit_image, 3, axis=1), digit_image.T.copy()]
    files = [("file", (f"{i}.png", png_bytes(img), "image/png")) for i, img in enumerate(images)]
    body = client.post("/v1/predict", files=files, params={"top_k": 2}).json()
    predictions = body["predictions"]
    assert len(predictions) == 3
    for p in predictions:
        assert 0 <= p["digit"] <= 9 and len(p["scores"]) == 10
        assert p["digit"] == int(np.argmax(p["scores"]))
        assert [t["digit"] for t in p["top_k"]][0] == p["digit"] and len(p["top_k"]) == 2
        assert p["links"]["reconstruction"] == f"/v1/reconstructions/{p['id']}.png"
    # each image alone, through another service whose caches have never seen them
    alone = make_client()
    single = [alone.post("/v1/predict", files=[f]).json()["predictions"][0] for f in files]
    assert [p["id"] for p in predictions] == [p["id"] for p in single]
    assert np.allclose([p["scores"] for p in predictions], [p["scores"] for p in single], atol=1e-5)


def test_json_base64_and_data_urls_give_the_same_answer(client: TestClient, png_bytes, digit_image) -> None:
    data = png_bytes(digit_image)
    encoded = base64.b64encode(data).decode()
    by_json = client.post(
        "/v1/predict", json={"images": [encoded, f"data:image/png;base64,{encoded}"]}
    ).json()
    by_form = client.post("/v1/predict", files={"file": ("d.png", data, "image/png")}).json()
    assert by_json["predictions"][0] == by_json["predictions"][1] == by_form["predictions"][0]


def test_capsules_are_ten_poses_of_sixteen_whose_lengths_are_the_scores(
    client: TestClient, png_bytes, digit_image
):
    files = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    [capsules] = client.post("/v1/capsules", files=files).json()["capsules"]
    poses = np.array(capsules["poses"])
    assert poses.shape == (10, 16)
    assert np.allclose(np.linalg.norm(poses, axis=1), capsules["lengths"], atol=1e-5)
    assert capsules["digit"] == int(np.argmax(capsules["lengths"]))


def test_preprocess_none_feeds_a_28x28_image_as_it_is(client: TestClient, png_bytes, digit_image) -> None:
    off_centre = np.roll(digit_image, 5, axis=1)  # auto would move it back to the centre of mass
    files = {"file": ("d.png", png_bytes(off_centre), "image/png")}
    [p] = client.post("/v1/predict", files=files, params={"preprocess": "none"}).json()["predictions"]
    seen = client.get(p["links"]["input"])
    assert seen.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(seen.content))), off_centre)
    [auto] = client.post("/v1/predict", files=files).json()["predictions"]
    assert auto["id"] != p["id"]


def test_model_info_describes_what_is_served(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["parameters"] > 0 and len(info["weights_sha256"]) == 64
    assert info["config"]["conv1_channels"] == 16


def test_an_api_key_guards_v1_but_not_probes_or_metrics(make_client, png_bytes, digit_image) -> None:
    client = make_client(api_key="s3cret")
    files = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = client.post("/v1/predict", files=files, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert client.post("/v1/predict", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/v1/model").status_code == 401
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200
