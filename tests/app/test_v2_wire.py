"""The Open Inference Protocol's wire format, checked against what tritonclient itself writes and reads."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from app.errors import InvalidUpload
from app.v2_wire import OutputTensor, encode_response, parse_request


def triton_body(inputs: list[httpclient.InferInput], **kwargs: object) -> tuple[bytes, str | None]:
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, **kwargs)
    return body, None if json_size is None else str(json_size)


def infer_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [False, True])
def test_numeric_tensors_arrive_as_tritonclient_sent_them(binary: bool) -> None:
    images = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    codes = np.arange(6, dtype=np.uint8).reshape(2, 3)
    body, header_length = triton_body(
        [infer_input("images", images, "FP32", binary), infer_input("codes", codes, "UINT8", binary)]
    )
    request = parse_request(body, header_length)
    assert [(t.name, t.datatype, t.shape) for t in request.inputs] == [
        ("images", "FP32", (2, 1, 28, 28)),
        ("codes", "UINT8", (2, 3)),
    ]
    np.testing.assert_array_equal(request.inputs[0].data, images)
    np.testing.assert_array_equal(request.inputs[1].data, codes)


def test_bytes_elements_arrive_whole_from_binary_data() -> None:
    files = np.array([b"\x89PNG\r\n\x1a\n\x00", b"", b"GIF89a"], dtype=np.object_)
    body, header_length = triton_body([infer_input("images", files, "BYTES", True)])
    assert parse_request(body, header_length).inputs[0].data == list(files)


def test_json_data_may_be_nested_or_flat_and_bytes_are_base64() -> None:
    nested = [[[[0.0, 0.5], [1.0, 0.25]]]]
    flat = [0.0, 0.5, 1.0, 0.25]
    for data in (nested, flat):
        request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, 2, 2], "data": data}]}
        parsed = parse_request(json.dumps(request).encode(), None)
        np.testing.assert_array_equal(parsed.inputs[0].data, np.array(nested, dtype=np.float32))
    png = b"\x89PNG\r\n"
    request = {
        "inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(png).decode()]}]
    }
    assert parse_request(json.dumps(request).encode(), None).inputs[0].data == [png]


def test_requested_outputs_say_which_come_back_as_binary() -> None:
    outputs = [
        httpclient.InferRequestedOutput("scores", binary_data=True),
        httpclient.InferRequestedOutput("digit", binary_data=False),
    ]
    zeros = np.zeros((1, 1), np.float32)
    body, header_length = triton_body(
        [infer_input("x", zeros, "FP32", False)], outputs=outputs, request_id="7"
    )
    request = parse_request(body, header_length)
    assert request.outputs == {"scores": True, "digit": False}
    assert request.id == "7"
    everything = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [0]}]}
    assert parse_request(json.dumps(everything).encode(), None).outputs is None


X = b'{"name": "x", "datatype": "FP32", "shape": [1], "data": [0]}'


@pytest.mark.parametrize(
    ("header", "binary", "message"),
    [
        (b"", None, "empty"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"inputs": []}', None, "non-empty list"),
        (b'{"inputs": [{"name": "x", "datatype": "FP8", "shape": [1], "data": [0]}]}', None, "datatype"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [0]}]}', None, "shape"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [0, 1]}]}',
            None,
            "2 elements",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [[0], [1, 2]]}]}',
            None,
            "regular",
        ),
        (b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [300]}]}', None, "UINT8"),
        (b'{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["%%"]}]}', None, "base64"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None, "neither data"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], '
            b'"parameters": {"binary_data_size": 4}}]}',
            b"abcd",
            "needs 8",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], '
            b'"parameters": {"binary_data_size": 8}}]}',
            b"abcd",
            "fewer are left",
        ),
        (b'{"inputs": [' + X + b"]}", b"xx", "belong to no input"),
        (b'{"inputs": [' + X + b'], "outputs": ["a"]}', None, "outputs"),
        (b'{"id": ' + b"9" * 5000 + b', "inputs": [' + X + b"]}", None, "not valid JSON"),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": ['
            + b"1, " * 64
            + b'1], "data": [0]}]}',
            None,
            "65 dimensions",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 0, 18446744073709551616], '
            b'"data": []}]}',
            None,
            "64-bit",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [0, 4611686018427387904, 8], '
            b'"data": []}]}',
            None,
            "cannot be built",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [0, 4611686018427387904, 8], '
            b'"parameters": {"binary_data_size": 0}}]}',
            b"",
            "cannot be built",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": '
            + b"[" * 900
            + b'"AAAA"'
            + b"]" * 900
            + b"}]}",
            None,
            "nested too deeply",
        ),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(
    header: bytes, binary: bytes | None, message: str
) -> None:
    header_length = None if binary is None else str(len(header))
    with pytest.raises(InvalidUpload, match=message):
        parse_request(header + (binary or b""), header_length)


@pytest.mark.parametrize("header_length", ["999", "-1", "twelve"])
def test_a_header_length_outside_the_body_is_refused(header_length: str) -> None:
    with pytest.raises(InvalidUpload, match="Inference-Header-Content-Length"):
        parse_request(b'{"inputs": [' + X + b"]}", header_length)


def test_a_response_with_binary_outputs_reads_back_in_tritonclient() -> None:
    scores = np.random.default_rng(1).random((3, 10), dtype=np.float32)
    digit = scores.argmax(axis=1).astype(np.int64)
    body, headers = encode_response(
        {"model_name": "m", "model_version": "1", "id": "a"},
        [
            OutputTensor("scores", "FP32", scores, binary=True),
            OutputTensor("digit", "INT64", digit, binary=False),
        ],
    )
    result = httpclient.InferenceServerClient.parse_response_body(
        body, header_length=int(headers["Inference-Header-Content-Length"])
    )
    np.testing.assert_array_equal(result.as_numpy("scores"), scores)
    np.testing.assert_array_equal(result.as_numpy("digit"), digit)
    assert result.get_response()["model_name"] == "m" and result.get_response()["id"] == "a"
    assert headers["content-type"] == "application/octet-stream"


def test_a_response_without_binary_outputs_is_plain_json() -> None:
    body, headers = encode_response(
        {"model_name": "m"}, [OutputTensor("d", "INT64", np.array([3, 4]), False)]
    )
    assert headers == {"content-type": "application/json"}
    assert json.loads(body)["outputs"] == [{"name": "d", "datatype": "INT64", "shape": [2], "data": [3, 4]}]
