"""Probes behave as Kubernetes expects, and /metrics is valid Prometheus exposition."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import app.main
from app.loading import load_model


def test_readiness_is_503_until_the_model_is_loaded_then_200(
    make_client, monkeypatch, wait_ready, png_bytes, digit_image
) -> None:
    gate = threading.Event()

    def slow_load(settings):
        gate.wait(timeout=30)
        return load_model(settings)

    monkeypatch.setattr(app.main, "load_model", slow_load)
    client: TestClient = make_client(ready=False)
    upload = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert (
        r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready" and "Retry-After" in r.headers
    )
    assert client.post("/v1/predict", files=upload).status_code == 503
    gate.set()
    wait_ready(client)
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.post("/v1/predict", files=upload).status_code == 200


def test_weights_that_fail_to_load_keep_readiness_at_503_with_the_reason(make_client, tmp_path) -> None:
    client = make_client(ready=False, weights=tmp_path / "missing.safetensors")
    for _ in range(200):
        r = client.get("/readyz")
        if "failed" in r.json()["error"]["message"]:
            break
        threading.Event().wait(0.02)
    assert r.status_code == 503 and "not found" in r.json()["error"]["message"]
    assert client.get("/healthz").status_code == 200


def test_metrics_parse_and_count_requests_by_route_and_status(
    client: TestClient, png_bytes, digit_image
) -> None:
    client.post("/v1/predict", files={"file": ("d.png", png_bytes(digit_image), "image/png")})
    client.get("/v1/reconstructions/" + "0" * 32 + ".png")
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["capsnet_http_requests"].samples
        if s.name == "capsnet_http_requests_total"
    }
    assert requests[("/v1/predict", "200")] == 1
    assert requests[("/v1/reconstructions/{token}.png", "404")] == 1
    for name in (
        "capsnet_http_request_duration_seconds",
        "capsnet_batch_size",
        "capsnet_stage_duration_seconds",
    ):
        assert name in families
    assert families["capsnet_model_load_seconds"].samples[0].value > 0
    assert families["capsnet_ready"].samples[0].value == 1


def test_openapi_documents_every_endpoint_with_both_upload_encodings(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/capsules", "/v1/reconstruct", "/v1/tweak", "/v1/decode", "/v1/model"):
        assert path in spec["paths"]
    upload = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "application/json"}
    assert "examples" in spec["components"]["schemas"]["PredictResponse"]
