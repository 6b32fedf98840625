"""The Open Inference Protocol (KServe V2) over REST, beside /v1: what Triton's and KServe's
clients, load tools and dashboards speak.

A translator, not a pipeline: an inference request becomes the same data-plane call /v1 makes
(`infer` for encoded image files, `infer_pixels` for preprocessed tensors), so both protocols
share the batcher, the caches and the limits. The wire format is `app.v2_wire`; the tensors'
names and shapes are the model's signature (`model.signature`), as in the exported ONNX graph.
Errors are the protocol's `{"error": "..."}`, with the status and Retry-After the data plane
chose.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.deps import PlaneDep, SettingsDep, errors, get_plane
from app.engine import DataPlane, Sample
from app.errors import InvalidUpload, NotFound, ServiceError, TooManyImages
from app.uploads import Upload, read_body
from app.v2_wire import HEADER_LENGTH, OutputTensor, Tensor, encode_response, parse_request
from model.capsnet import CapsNetConfig
from model.signature import TensorSpec, digit_check_outputs, image_input, outputs

PIXEL_TYPES = ("FP32", "UINT8")


class V2Route(APIRoute):
    """Answers a ServiceError in the protocol's error format instead of /v1's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ServiceError as e:
                status = 400 if e.status in (415, 422) else e.status  # V2 knows 400, 404 and 503
                return JSONResponse({"error": e.message}, status_code=status, headers=e.headers)

        return handle


class V2Error(BaseModel):
    """The protocol's error: a message, nothing else."""

    error: str


V2_ERROR_STATUSES = {
    400: "a malformed or invalid request: its JSON, tensors, images or parameters",
    401: "missing or wrong X-API-Key (only when the server sets CAPSNET_API_KEY)",
    404: "no such model or version on this server",
    413: "body over CAPSNET_MAX_UPLOAD_BYTES, or an image over CAPSNET_MAX_IMAGE_PIXELS",
    503: "model loading or failed to load, overloaded, or shutting down (see Retry-After)",
}


def v2_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for these statuses, in the protocol's error format."""
    return errors(*statuses, model=V2Error, descriptions=V2_ERROR_STATUSES)


health = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=V2Route)
router = APIRouter(
    prefix="/v2", tags=["open inference protocol"], route_class=V2Route, responses=v2_errors(401, 503)
)
MODEL_ERRORS = v2_errors(404)


@health.get("/health/live")
async def live() -> dict[str, bool]:
    """Same meaning as /healthz."""
    return {"live": True}


@health.get("/health/ready", dependencies=[Depends(get_plane)], responses=v2_errors(503))
async def ready() -> dict[str, bool]:
    """Same meaning as /readyz: 503 until the weights are loaded and warmed up."""
    return {"ready": True}


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {
        "name": "capsnet-serve",
        "version": package_version("capsnet-serve"),
        "extensions": ["binary_tensor_data"],
    }


@router.get("/models/{name}", responses=MODEL_ERRORS)
@router.get("/models/{name}/versions/{version}", responses=MODEL_ERRORS)
async def model_metadata(plane: PlaneDep, name: str, version: str | None = None) -> dict[str, Any]:
    """Name and version from the weights' card (as GET /v1/model); tensors from the model's config."""
    info = served(plane, name, version)
    config = CapsNetConfig.from_dict(info["config"])
    return {
        "name": info["name"],
        "versions": [info["version"]],
        "platform": "pytorch",
        "inputs": [describe(image_input(config))],
        "outputs": [describe(spec) for spec in served_outputs(plane, config)],
    }


@router.get("/models/{name}/ready", responses=MODEL_ERRORS)
@router.get("/models/{name}/versions/{version}/ready", responses=MODEL_ERRORS)
async def model_ready(plane: PlaneDep, name: str, version: str | None = None) -> dict[str, Any]:
    info = served(plane, name, version)
    return {"name": info["name"], "ready": True}


@router.post("/models/{name}/infer", responses=v2_errors(400, 404, 413))
@router.post("/models/{name}/versions/{version}/infer", responses=v2_errors(400, 404, 413))
async def infer(
    request: Request, plane: PlaneDep, settings: SettingsDep, name: str, version: str | None = None
) -> Response:
    """Images as FP32 or UINT8 tensors [N, 1, 28, 28] (preprocessed), or BYTES [N] (image files)."""
    info = served(plane, name, version)
    config = CapsNetConfig.from_dict(info["config"])
    body = await read_body(request, settings.max_upload_bytes)
    parsed = parse_request(body, request.headers.get(HEADER_LENGTH))
    samples = await run(plane, parsed.inputs, image_input(config), settings.max_images_per_request)
    specs = {spec.name: spec for spec in served_outputs(plane, config)}
    selection = parsed.outputs or dict.fromkeys(specs, parsed.binary_default)
    unknown = set(selection) - set(specs)
    if unknown:
        raise InvalidUpload(f"unknown outputs {sorted(unknown)}; this model gives {', '.join(specs)}")
    tensors = [
        OutputTensor(out, specs[out].datatype, await output(plane, samples, out), binary)
        for out, binary in selection.items()
    ]
    head = {"model_name": info["name"], "model_version": info["version"]}
    if parsed.id is not None:
        head["id"] = parsed.id
    content, headers = encode_response(head, tensors)
    return Response(content, headers=headers)


def served(plane: DataPlane, name: str, version: str | None) -> dict[str, Any]:
    """The model's card info, if `name` (and `version`, when given) is what this server serves."""
    info = plane.info
    if name != info["name"] or version not in (None, info["version"]):
        asked = name if version is None else f"{name} version {version}"
        raise NotFound(f"unknown model {asked}; this server serves {info['name']} version {info['version']}")
    return info


def served_outputs(plane: DataPlane, config: CapsNetConfig) -> list[TensorSpec]:
    """The model's outputs and the digit check's; `is_digit` only where the card has a rule."""
    calibrated = plane.digit_rule is not None
    return [*outputs(config), *(s for s in digit_check_outputs() if calibrated or s.name != "is_digit")]


def describe(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": [-1, *spec.shape]}


async def run(plane: DataPlane, inputs: list[Tensor], spec: TensorSpec, max_images: int) -> list[Sample]:
    """The one input tensor -> the data-plane call that /v1 makes for the same kind of input."""
    if len(inputs) != 1 or inputs[0].name != spec.name:
        raise InvalidUpload(f"send one input named {spec.name!r}; got {[t.name for t in inputs]}")
    [tensor] = inputs
    count = tensor.shape[0] if tensor.shape else 0
    if count == 0:
        raise InvalidUpload(f"input {spec.name!r} holds no image")
    if count > max_images:
        raise TooManyImages(f"{count} images in one request; the limit is {max_images}")
    if tensor.datatype == "BYTES":
        if len(tensor.shape) != 1:
            raise InvalidUpload(f"BYTES input {spec.name!r} must have shape [N], one encoded image file each")
        files = [Upload(f"{spec.name}[{index}]", data) for index, data in enumerate(tensor.data)]
        return await plane.infer(files, "auto")
    return await plane.infer_pixels(pixels(tensor, spec))


def pixels(tensor: Tensor, spec: TensorSpec) -> np.ndarray:
    """A UINT8 or FP32 [N, 1, H, W] tensor -> (N, H, W) floats in [0, 1], what the model sees."""
    expected = ", ".join(str(d) for d in spec.shape)
    if tensor.datatype not in PIXEL_TYPES:
        raise InvalidUpload(
            f"input {spec.name!r} must be FP32 or UINT8 [N, {expected}], or BYTES [N]; got {tensor.datatype}"
        )
    if tensor.shape[1:] != spec.shape:
        raise InvalidUpload(f"input {spec.name!r} must have shape [N, {expected}]; got {list(tensor.shape)}")
    assert isinstance(tensor.data, np.ndarray)
    if tensor.datatype == "UINT8":
        return tensor.data[:, 0].astype(np.float32) / 255
    data = tensor.data[:, 0]
    if not np.isfinite(data).all() or data.min() < 0 or data.max() > 1:
        raise InvalidUpload(f"FP32 pixels of {spec.name!r} must lie in [0, 1] (pixel / 255); or send UINT8")
    return data


async def output(plane: DataPlane, samples: list[Sample], name: str) -> np.ndarray:
    if name == "scores":
        return np.stack([s.lengths for s in samples])  # (N, 10)
    if name == "digit":
        return np.array([s.digit for s in samples], dtype=np.int64)  # (N,)
    if name == "poses":
        return np.stack([s.poses for s in samples])  # (N, 10, 16)
    if name == "reconstruction_error":
        return np.array([s.reconstruction_error for s in samples], dtype=np.float32)  # (N,)
    if name == "is_digit":
        return np.array([s.is_digit for s in samples], dtype=np.bool_)  # (N,)
    return (await plane.reconstructions(samples))[:, None]  # (N, 1, 28, 28)
