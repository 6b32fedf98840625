"""Every request's cost is known and bounded before the work starts.

Parameters that set the amount of work are refused before any image or model work; what the
server cannot afford right now is refused at the one admission door with 503 + Retry-After,
while the requests it admitted, and a prediction beside them, still get their answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import app.png
from app.batcher import Batcher


def upload(png_bytes, image) -> dict:
    return {"file": ("d.png", png_bytes(image), "image/png")}


def make_model_untouchable(monkeypatch) -> None:
    """Any use of the model fails the test's request loudly."""

    async def touched(*args, **kwargs):
        raise AssertionError("the model was used")

    monkeypatch.setattr(Batcher, "infer", touched)
    monkeypatch.setattr(Batcher, "run", touched)


def test_a_tweak_listing_32000_dims_is_refused_at_once_without_the_model(
    client: TestClient, png_bytes, digit_image, monkeypatch
) -> None:
    [p] = client.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    make_model_untouchable(monkeypatch)
    query = "?steps=21&dims=" + ",".join(["0"] * 32_000)  # a 64 KB URL
    for send in (
        lambda: client.post("/v1/tweak" + query, files=upload(png_bytes, digit_image)),
        lambda: client.get(p["links"]["tweak"] + query),
    ):
        start = time.perf_counter()
        r = send()
        assert time.perf_counter() - start < 1.0  # the old code spent 17.7 s of model time here
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter", r.text


@pytest.mark.parametrize(
    "params",
    [
        {"scale": 16},  # every dim, 11 steps: 7168 x 4928
        {"dims": "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", "steps": 21, "scale": 8},
        {"dims": "0,0"},
        {"dims": "16"},
    ],
)
def test_tweaks_over_the_limits_are_refused_before_the_model_runs(
    client: TestClient, png_bytes, digit_image, monkeypatch, params: dict
) -> None:
    [p] = client.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    make_model_untouchable(monkeypatch)
    r = client.get(p["links"]["tweak"], params=params)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter", r.text


def test_heavy_renders_beyond_the_budget_get_503_while_a_prediction_still_answers(
    make_client, png_bytes, digit_image, monkeypatch
) -> None:
    client: TestClient = make_client()
    [p] = client.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    release = threading.Event()
    encode = app.png.encode

    def slow_encode(pixels: np.ndarray, scale: int = 1) -> bytes:
        release.wait(timeout=30)  # a heavy encode, held until the test lets it go
        return encode(pixels, scale)

    monkeypatch.setattr(app.png, "encode", slow_encode)
    heavy = {"steps": 21, "scale": 7}  # 3136 x 4116 pixels, about 12.9 million
    with ThreadPoolExecutor(65) as pool:
        try:
            renders = [pool.submit(client.get, p["links"]["tweak"], params=heavy) for _ in range(64)]
            deadline = time.monotonic() + 20
            while sum(r.done() for r in renders) < 59 and time.monotonic() < deadline:
                time.sleep(0.05)
            refused = [r.result() for r in renders if r.done()]
            other_digit = upload(png_bytes, np.roll(digit_image, 2, axis=1))
            answer = pool.submit(client.post, "/v1/predict", files=other_digit).result(timeout=1.0)
        finally:
            release.set()
        finished = [r.result(timeout=30) for r in renders]
    assert answer.status_code == 200
    # the default budget holds four PNGs of the 4096 x 4096 limit: five of these 12.9-megapixel ones
    assert len(refused) == 59 and all(r.status_code == 503 for r in refused)
    assert [r.status_code for r in finished].count(200) == 5
    for r in refused:
        assert r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == "overloaded"


def test_images_beyond_the_queue_are_refused_with_503_and_retry_after(
    make_client, png_bytes, digit_image, monkeypatch
) -> None:
    client: TestClient = make_client(max_queue=4, max_images_per_request=4)
    files = [
        ("file", (f"{i}.png", png_bytes(np.roll(digit_image, i, axis=1)), "image/png")) for i in range(3)
    ]
    gate = threading.Event()
    infer = Batcher.infer

    async def held(self, images):
        while not gate.is_set():
            await asyncio.sleep(0.01)
        return await infer(self, images)

    monkeypatch.setattr(Batcher, "infer", held)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/predict", files=files)
        time.sleep(0.3)
        second = client.post("/v1/predict", files=files)
        while_held = admission_metrics(client)
        gate.set()
        assert first.result(timeout=30).status_code == 200
    assert second.status_code == 503 and second.headers["Retry-After"] == "1"
    assert second.json()["error"]["code"] == "overloaded"
    assert client.post("/v1/predict", files=files).status_code == 200
    assert while_held["capsnet_admission_capacity", "images"] == 4
    assert while_held["capsnet_admission_in_use", "images"] == 3  # the first request's images
    assert while_held["capsnet_admission_refused_total", "images"] == 1
    assert while_held["capsnet_admission_refused_total", "pixels"] == 0
    assert admission_metrics(client)["capsnet_admission_in_use", "images"] == 0


def admission_metrics(client: TestClient) -> dict[tuple[str, str], float]:
    """(sample name, budget) -> value, for the admission families of /metrics."""
    return {
        (sample.name, sample.labels["budget"]): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        if family.name.startswith("capsnet_admission")
        for sample in family.samples
    }
