"""The HTTP contract holds at its edges: request ids, HEAD probes, strict bodies, no 500 from input."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.routes.images import DECODE_BODY_BYTES


def upload(png_bytes, image) -> dict:
    return {"file": ("d.png", png_bytes(image), "image/png")}


def test_every_response_carries_a_request_id_that_errors_and_logs_repeat(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    ok = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert ok.headers["X-Request-ID"] == "trace-42"
    with caplog.at_level(logging.INFO, logger="capsnet"):
        r = client.post(
            "/v1/predict", json={"images": ["***"]}, headers={"X-Request-ID": "bad id <script>" * 20}
        )
    request_id = r.headers["X-Request-ID"]
    assert len(request_id) == 32 and r.json()["error"]["request_id"] == request_id
    made = client.post("/v1/predict", content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert made.json()["error"]["request_id"] == made.headers["X-Request-ID"] != request_id
    assert all(
        record.request_id != "-" for record in caplog.records if record.name.startswith("capsnet.serve")
    )


@pytest.mark.parametrize(("path", "deep"), [("/v1/predict", 100_000), ("/v1/decode", 30_000)])
def test_json_nested_a_thousand_deep_is_a_400_in_the_error_format(
    client: TestClient, path: str, deep: int
) -> None:
    for body in (b"[" * 1000 + b"]" * 1000, b'{"images": ' + b"[" * deep):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_body", r.text


def test_a_decode_body_is_bounded_before_it_is_read(client: TestClient) -> None:
    """A digit and its pose are a few hundred bytes; FastAPI alone would read a body of any size."""
    pose = {"digit": 3, "pose": [0.1] * 16}
    padded = json.dumps({**pose, "padding": " " * (1 << 20)}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for start in range(0, len(padded), 1 << 16):
            yield padded[start : start + (1 << 16)]

    json_type = {"content-type": "application/json"}
    for body in (padded, chunks()):
        r = client.post("/v1/decode", content=body, headers=json_type)
        assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large", r.text
        assert r.json()["error"]["details"] == {"max_body_bytes": DECODE_BODY_BYTES}
    r = client.post("/v1/decode", content=json.dumps(pose), headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type", r.text
    assert client.post("/v1/decode", json=pose).headers["content-type"] == "image/png"


@pytest.mark.parametrize("body", [{"digit": False, "pose": [0.0] * 16}, {"digit": 2, "pose": [True] * 16}])
def test_decode_refuses_booleans_for_numbers(client: TestClient, body: dict) -> None:
    r = client.post("/v1/decode", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter"


def test_the_v2_routes_document_their_errors_in_the_protocols_format(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    infer = paths["/v2/models/{name}/infer"]["post"]["responses"]
    assert {"400", "401", "404", "413", "503"} <= set(infer)
    assert infer["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/V2Error"}
    assert {"401", "404", "503"} <= set(paths["/v2/models/{name}/versions/{version}"]["get"]["responses"])
    assert "503" in paths["/v2/health/ready"]["get"]["responses"]


def test_an_empty_dims_means_every_dimension(client: TestClient, png_bytes, digit_image, png_size) -> None:
    r = client.post("/v1/tweak?dims=&steps=3", files=upload(png_bytes, digit_image))
    assert r.status_code == 200 and png_size(r.content) == (3 * 28, 16 * 28)


def test_probes_answer_head(client: TestClient) -> None:
    for path in ("/healthz", "/readyz"):
        r = client.head(path)
        assert r.status_code == 200 and r.content == b""


def test_a_client_that_disconnects_mid_upload_counts_as_499_not_an_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def abandon_upload() -> list[dict]:
        messages = iter(
            [
                {"type": "http.request", "body": b'{"images": ["iVBO', "more_body": True},
                {"type": "http.disconnect"},
            ]
        )
        sent: list[dict] = []

        async def receive() -> dict:
            await asyncio.sleep(0)
            return next(messages)

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/predict",
            "raw_path": b"/v1/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
            "client": ("127.0.0.1", 1234),
            "server": ("test", 80),
            "state": {},
        }
        await client.app(scope, receive, send)
        return sent

    with caplog.at_level(logging.INFO):
        client.portal.call(abandon_upload)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    statuses = {
        (s.labels["route"], s.labels["status"])
        for s in families["capsnet_http_requests"].samples
        if s.name == "capsnet_http_requests_total"
    }
    assert ("/v1/predict", "499") in statuses and ("/v1/predict", "500") not in statuses


def test_openapi_documents_each_routes_errors_and_a_valid_example(client: TestClient, png_bytes) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"401", "503"} <= set(paths["/v1/model"]["get"]["responses"])
    for link in ("/v1/inputs/{token}.png", "/v1/reconstructions/{token}.png", "/v1/tweaks/{token}.png"):
        assert {"200", "401", "404", "422", "503"} <= set(paths[link]["get"]["responses"])
    assert "head" in paths["/healthz"] and "head" in paths["/readyz"]
    example = paths["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    r = client.post("/v1/predict", json=example)
    assert r.status_code == 200 and r.json()["predictions"][0]["digit"] in range(10)


def test_query_integers_must_be_written_as_integers(client: TestClient, png_bytes, digit_image) -> None:
    r = client.post("/v1/reconstruct?digit=0.0", files=upload(png_bytes, digit_image))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter"
    assert client.post("/v1/reconstruct?digit=+3", files=upload(png_bytes, digit_image)).status_code == 200


def test_a_405_lists_every_method_of_the_path(client: TestClient) -> None:
    r = client.options("/healthz")
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "HEAD"}
