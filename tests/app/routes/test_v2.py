"""The Open Inference Protocol endpoints, driven by the clients people use with Triton and KServe.

A real server (uvicorn in a thread, on a port the OS picks) serves the small random model, since
tritonclient and the kserve SDK speak HTTP over sockets. Every answer is checked against what
/v1/predict says for the same images on the same server.
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import numpy as np
import pytest
import tritonclient.http as triton
import uvicorn
from fastapi.testclient import TestClient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from PIL import Image
from tritonclient.utils import InferenceServerException

from app.main import create_app
from app.settings import Settings, get_settings

SIDE = 28


class Server:
    def __init__(self, weights: Path, **settings: object) -> None:
        app = create_app()
        resolved = Settings(**{"weights": weights, "device": "cpu", **settings})
        app.dependency_overrides[get_settings] = lambda: resolved
        self.app = app
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.url = f"http://{self.address}"
        self.uvicorn = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.uvicorn.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"{self.url}/readyz").status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@pytest.fixture(scope="module")
def server(small_weights: Path) -> Iterator[Server]:
    with Server(small_weights, max_images_per_request=8) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.address) as c:
        yield c


@pytest.fixture(scope="module")
def model(server: Server) -> dict:
    return httpx2.get(f"{server.url}/v1/model").json()


def digits(count: int) -> np.ndarray:
    """(count, 28, 28) uint8 strokes, each a little different, white ink on black."""
    images = np.zeros((count, SIDE, SIDE), np.uint8)
    for i, image in enumerate(images):
        image[5:23, 12:16] = 255  # a '1' with a foot
        image[20:23, 9:19] = 255
        image[4 + i : 10 + i, 6 + 2 * i] = 200  # a serif that moves from image to image
    return images


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def v1_predict(server: Server, images: np.ndarray, preprocess: str = "none") -> dict:
    files = [("file", (f"{i}.png", png_bytes(image), "image/png")) for i, image in enumerate(images)]
    answer = httpx2.post(f"{server.url}/v1/predict", params={"preprocess": preprocess}, files=files)
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_same_as_v1(result: triton.InferResult, v1: dict) -> None:
    np.testing.assert_allclose(result.as_numpy("scores"), [p["scores"] for p in v1["predictions"]], atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("digit"), [p["digit"] for p in v1["predictions"]])


def test_health_and_metadata_answer_what_tritonclient_reads(
    client: triton.InferenceServerClient, model: dict
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model["name"]) and client.is_model_ready(model["name"], model["version"])
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(model["name"])
    assert metadata == client.get_model_metadata(model["name"], model["version"])
    assert (metadata["name"], metadata["versions"]) == (model["name"], [model["version"]])
    assert metadata["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 1, SIDE, SIDE]}]
    assert metadata["outputs"] == [
        {"name": "scores", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "digit", "datatype": "INT64", "shape": [-1]},
        {"name": "poses", "datatype": "FP32", "shape": [-1, 10, 16]},
        {"name": "reconstruction", "datatype": "FP32", "shape": [-1, 1, SIDE, SIDE]},
        {"name": "reconstruction_error", "datatype": "FP32", "shape": [-1]},  # no is_digit: no digit check
    ]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_pixel_tensors_get_the_answers_v1_gives_for_the_same_images(
    client: triton.InferenceServerClient, server: Server, model: dict, datatype: str, binary: bool
) -> None:
    images = digits(3)
    tensor = images[:, None] if datatype == "UINT8" else images[:, None].astype(np.float32) / 255
    infer_input = triton.InferInput("images", list(tensor.shape), datatype)
    infer_input.set_data_from_numpy(tensor, binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("scores", "digit", "poses")]
    result = client.infer(model["name"], [infer_input], outputs=outputs, request_id="r1")
    assert_same_as_v1(result, v1_predict(server, images))
    assert result.as_numpy("poses").shape == (3, 10, 16)
    assert result.as_numpy("reconstruction") is None  # not asked for
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        model["name"],
        model["version"],
        "r1",
    )


def test_encoded_files_as_bytes_go_through_default_preprocessing(
    client: triton.InferenceServerClient, server: Server, model: dict
) -> None:
    images = digits(2)
    files = np.array(
        [png_bytes(np.pad(image, 20)) for image in images], dtype=np.object_
    )  # off-size canvases
    infer_input = triton.InferInput("images", [2], "BYTES")
    infer_input.set_data_from_numpy(files, binary_data=True)
    result = client.infer(model["name"], [infer_input], model_version=model["version"])
    v1 = httpx2.post(
        f"{server.url}/v1/predict",
        files=[("file", (f"{i}.png", f, "image/png")) for i, f in enumerate(files)],
    ).json()
    assert_same_as_v1(result, v1)
    reconstruction = result.as_numpy("reconstruction")  # every output when none is named
    assert (
        reconstruction.shape == (2, 1, SIDE, SIDE) and 0 <= reconstruction.min() <= reconstruction.max() <= 1
    )


def test_curl_style_json_with_nested_data_and_base64_files(server: Server, model: dict) -> None:
    images = digits(2)
    url = f"{server.url}/v2/models/{model['name']}/infer"
    nested = {
        "inputs": [
            {
                "name": "images",
                "datatype": "UINT8",
                "shape": [2, 1, SIDE, SIDE],
                "data": images[:, None].tolist(),
            }
        ],
        "outputs": [{"name": "digit"}],
    }
    answer = httpx2.post(url, json=nested)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    [digit] = answer.json()["outputs"]
    assert digit == {
        "name": "digit",
        "datatype": "INT64",
        "shape": [2],
        "data": [p["digit"] for p in v1_predict(server, images)["predictions"]],
    }
    encoded = [base64.b64encode(png_bytes(image)).decode() for image in images]
    files = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2], "data": encoded}]}
    assert httpx2.post(url, json=files).status_code == 200


def test_the_kserve_sdk_rest_client_gets_the_same_answers(server: Server, model: dict) -> None:
    images = digits(2)
    tensor = images[:, None].astype(np.float32) / 255

    async def infer() -> object:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            assert await client.is_server_ready(server.url)
            assert await client.is_model_ready(server.url, model["name"])
            infer_input = InferInput("images", list(tensor.shape), "FP32")
            infer_input.set_data_from_numpy(tensor, binary_data=True)
            return await client.infer(server.url, InferRequest(model["name"], [infer_input]), model["name"])
        finally:
            await client.close()

    response = asyncio.run(infer())
    outputs = {out.name: out.as_numpy() for out in response.outputs}
    v1 = v1_predict(server, images)["predictions"]
    np.testing.assert_allclose(outputs["scores"], [p["scores"] for p in v1], atol=1e-6)
    np.testing.assert_array_equal(outputs["digit"], [p["digit"] for p in v1])


@pytest.mark.parametrize(
    ("datatype", "tensor", "message"),
    [
        ("FP32", np.full((1, 1, SIDE, SIDE), 255, np.float32), r"\[0, 1\]"),
        ("FP32", np.zeros((1, 1, SIDE, SIDE - 1), np.float32), "shape"),
        ("INT32", np.zeros((1, 1, SIDE, SIDE), np.int32), "FP32 or UINT8"),
        ("UINT8", np.zeros((9, 1, SIDE, SIDE), np.uint8), "limit is 8"),
        ("BYTES", np.array([b"not an image"], dtype=np.object_), "image"),
    ],
)
def test_bad_inputs_are_400_with_the_protocols_error_body(
    client: triton.InferenceServerClient, model: dict, datatype: str, tensor: np.ndarray, message: str
) -> None:
    infer_input = triton.InferInput("images", list(tensor.shape), datatype)
    infer_input.set_data_from_numpy(tensor)
    with pytest.raises(InferenceServerException, match=message) as raised:
        client.infer(model["name"], [infer_input])
    assert raised.value.status() == "400"


def test_unknown_models_versions_and_outputs_are_refused(server: Server, model: dict) -> None:
    ok = {"name": "images", "datatype": "UINT8", "shape": [1, 1, SIDE, SIDE], "data": [0] * SIDE * SIDE}
    for path in ("/v2/models/lenet", f"/v2/models/{model['name']}/versions/0", "/v2/models/lenet/ready"):
        answer = httpx2.get(server.url + path)
        assert answer.status_code == 404 and model["version"] in answer.json()["error"]
    answer = httpx2.post(server.url + "/v2/models/lenet/infer", json={"inputs": [ok]})
    assert answer.status_code == 404
    answer = httpx2.post(
        f"{server.url}/v2/models/{model['name']}/infer",
        json={"inputs": [ok], "outputs": [{"name": "logits"}]},
    )
    assert answer.status_code == 400 and "logits" in answer.json()["error"]
    assert isinstance(answer.json()["error"], str)


def test_an_overloaded_server_answers_503_with_retry_after_as_v1_does(server: Server, model: dict) -> None:
    plane = server.app.state.plane
    capacity = plane.admission.capacity["images"]
    ok = {"name": "images", "datatype": "UINT8", "shape": [1, 1, SIDE, SIDE], "data": [7] * SIDE * SIDE}
    plane.admission.held["images"] += capacity  # as if the queue were full
    try:
        v2 = httpx2.post(f"{server.url}/v2/models/{model['name']}/infer", json={"inputs": [ok]})
        v1 = httpx2.post(f"{server.url}/v1/predict?preprocess=none", files={"file": png_bytes(digits(1)[0])})
    finally:
        plane.admission.held["images"] -= capacity
    assert v2.status_code == v1.status_code == 503
    assert v2.headers["retry-after"] == v1.headers["retry-after"]
    assert isinstance(v2.json()["error"], str)


def test_v2_readiness_is_503_until_the_model_is_loaded_and_liveness_is_not(small_weights: Path) -> None:
    app = create_app()  # no lifespan: the model never loads
    app.dependency_overrides[get_settings] = lambda: Settings(weights=small_weights, device="cpu")
    c = TestClient(app)
    assert c.get("/v2/health/live").json() == {"live": True}
    ready = c.get("/v2/health/ready")
    assert ready.status_code == 503 and "loading" in ready.json()["error"]
    assert ready.headers["retry-after"]
    assert c.get("/v2/models/capsnet/ready").status_code == 503
