"""The Open Inference Protocol's REST wire format (KServe V2): tensors in JSON, and the binary
tensor data extension that `tritonclient` uses, to and from numpy.

A request body is a JSON object, optionally followed by raw tensor bytes; then the header
`Inference-Header-Content-Length` says where the JSON ends, and each binary input says its
size in `parameters.binary_data_size`, in input order. JSON data may be flat or nested (row
major either way). BYTES elements are length-prefixed in binary (4 bytes, little endian) and
base64 strings in JSON, since encoded images are not text. Nothing here knows the model.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidUpload
from app.uploads import parse_json

HEADER_LENGTH = "Inference-Header-Content-Length"
NUMPY_TYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMPY_TYPES, "BYTES")
MAX_DIMENSIONS = 32  # no model input needs more; numpy's arrays may have no more than 32 to 64
MAX_DIMENSION = 2**63 - 1  # each an int64, as in Triton's own tensors


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]  # numbers in `shape`, or the BYTES elements in row-major order


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool] | None  # name -> send as binary data; None: every output the model has
    binary_default: bool  # how to send outputs when `outputs` is None


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """Request body (and the binary extension's header, if sent) -> the inputs as numpy."""
    header, binary = split_body(body, header_length)
    request = load_json(header)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidUpload('the request needs "inputs", a non-empty list of tensors')
    blobs = BinaryReader(binary)
    tensors = [parse_input(item, index, blobs) for index, item in enumerate(inputs)]
    blobs.check_consumed()
    outputs, binary_default = parse_outputs(request)
    request_id = request.get("id")
    return InferRequest(None if request_id is None else str(request_id), tensors, outputs, binary_default)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidUpload(
            f"{HEADER_LENGTH} is {header_length!r}; it must be a byte count within the body's {len(body)}"
        )
    return body[: int(header_length)], body[int(header_length) :]


def load_json(header: bytes) -> dict[str, Any]:
    if not header:
        raise InvalidUpload("the body is empty: send an inference request as JSON")
    request = parse_json(header)
    if not isinstance(request, dict):
        raise InvalidUpload("the request must be a JSON object")
    return request


class BinaryReader:
    """Hands out the bytes after the JSON header, input by input."""

    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, size: int, name: str) -> bytes:
        if self.offset + size > len(self.data):
            raise InvalidUpload(f"input {name!r} claims {size} binary bytes, but fewer are left in the body")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def check_consumed(self) -> None:
        if self.offset != len(self.data):
            raise InvalidUpload(f"{len(self.data) - self.offset} bytes after the tensors belong to no input")


def parse_input(item: object, index: int, blobs: BinaryReader) -> Tensor:
    if not isinstance(item, dict):
        raise InvalidUpload(f"inputs[{index}] must be an object with name, datatype, shape and data")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str):
        raise InvalidUpload(f"inputs[{index}] has no name")
    if datatype not in DATATYPES:
        raise InvalidUpload(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and 0 <= d <= MAX_DIMENSION for d in shape):
        raise InvalidUpload(f"input {name!r}: shape must be a list of non-negative 64-bit integers")
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidUpload(
            f"input {name!r}: {len(shape)} dimensions; at most {MAX_DIMENSIONS} are supported"
        )
    parameters = item.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0:
            raise InvalidUpload(f"input {name!r}: binary_data_size must be a byte count")
        data = from_binary(blobs.take(size, name), name, datatype, shape)
    elif "data" in item:
        data = from_json(item["data"], name, datatype, shape)
    else:
        raise InvalidUpload(f"input {name!r} has neither data nor parameters.binary_data_size")
    return Tensor(name, datatype, tuple(shape), data)


def from_json(data: object, name: str, datatype: str, shape: list[int]) -> np.ndarray | list[bytes]:
    if not isinstance(data, list):
        raise InvalidUpload(f"input {name!r}: data must be a list, flat or nested")
    if datatype == "BYTES":
        try:
            leaves = flatten(data)
        except RecursionError as e:
            raise InvalidUpload(f"input {name!r}: data are nested too deeply") from e
        elements = [decode_base64(text, name) for text in leaves]
        check_count(len(elements), name, shape)
        return elements
    try:
        array = np.asarray(data, dtype=NUMPY_TYPES[datatype]).reshape(-1)
    except (ValueError, TypeError, OverflowError) as e:
        raise InvalidUpload(f"input {name!r}: data are not {datatype} values in a regular array: {e}") from e
    check_count(array.size, name, shape)
    return shaped(array, name, shape)


def from_binary(raw: bytes, name: str, datatype: str, shape: list[int]) -> np.ndarray | list[bytes]:
    if datatype == "BYTES":
        elements = split_bytes(raw, name)
        check_count(len(elements), name, shape)
        return elements
    dtype = NUMPY_TYPES[datatype]
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise InvalidUpload(
            f"input {name!r}: {len(raw)} binary bytes, but shape {shape} of {datatype} needs "
            f"{math.prod(shape) * dtype.itemsize}"
        )
    return shaped(np.frombuffer(raw, dtype=dtype), name, shape)


def shaped(array: np.ndarray, name: str, shape: list[int]) -> np.ndarray:
    """`array` (as many elements as `shape` holds) in `shape`, which numpy may still refuse: an
    empty tensor whose other dimensions multiply past what it can index."""
    try:
        return array.reshape(shape)
    except ValueError as e:
        raise InvalidUpload(f"input {name!r}: shape {shape} cannot be built: {e}") from e


def flatten(data: list[Any]) -> list[Any]:
    """Nested lists -> their leaves in row-major order."""
    return [leaf for item in data for leaf in (flatten(item) if isinstance(item, list) else [item])]


def check_count(count: int, name: str, shape: list[int]) -> None:
    if count != math.prod(shape):
        raise InvalidUpload(f"input {name!r}: {count} elements, but shape {shape} holds {math.prod(shape)}")


def decode_base64(text: object, name: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidUpload(f"input {name!r}: BYTES data in JSON must be base64 strings")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidUpload(f"input {name!r}: an element is not valid base64: {e}") from e


def split_bytes(raw: bytes, name: str) -> list[bytes]:
    """BYTES in binary: each element is a 4-byte little-endian length, then that many bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidUpload(f"input {name!r}: BYTES data end inside an element's length")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise InvalidUpload(f"input {name!r}: a BYTES element runs past the tensor's data")
        elements.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return elements


def parse_outputs(request: dict[str, Any]) -> tuple[dict[str, bool] | None, bool]:
    """The outputs asked for by name (None: all), each with whether it goes back as binary data,
    and the request-wide `binary_data_output` that applies where an output does not say."""
    parameters = request.get("parameters") or {}
    binary_default = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    outputs = request.get("outputs")
    if outputs is None:
        return None, binary_default
    if not isinstance(outputs, list) or not all(valid_output(o) for o in outputs):
        raise InvalidUpload('"outputs" must be a list of objects with a name')
    binary = {o["name"]: (o.get("parameters") or {}).get("binary_data", binary_default) for o in outputs}
    return {name: flag is True for name, flag in binary.items()}, binary_default


def valid_output(output: object) -> bool:
    return (
        isinstance(output, dict)
        and isinstance(output.get("name"), str)
        and isinstance(output.get("parameters") or {}, dict)
    )


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    data: np.ndarray
    binary: bool


def encode_response(head: dict[str, Any], outputs: list[OutputTensor]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers; binary outputs follow the JSON, in output order."""
    described, blobs = [], []
    for out in outputs:
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(out.data.shape)}
        if out.binary:
            blob = out.data.astype(NUMPY_TYPES[out.datatype], copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = out.data.reshape(-1).tolist()
        described.append(entry)
    header = json.dumps({**head, "outputs": described}, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return header + b"".join(blobs), headers
