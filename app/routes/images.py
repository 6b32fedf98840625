"""The decoder's pictures as PNGs: reconstructions, tweak grids (figure 4) and edited poses.

POST endpoints take an upload; the GET ones render from a prediction's link, whose token carries
the input, so any replica can answer them. Each route only translates HTTP into a data-plane call.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.deps import (
    IMAGE_UPLOAD,
    PNG,
    UPLOAD_ERRORS,
    DigitQuery,
    ImagesDep,
    PlaneDep,
    PreprocessQuery,
    ScaleQuery,
    WholeNumber,
    errors,
)
from app.errors import InvalidParameter, UnsupportedMediaType
from app.renders import DecodePng, InputPng, ReconstructionPng, TweakPng
from app.schemas import DecodeRequest
from app.uploads import is_json, media_type, parse_json, read_body

router = APIRouter(prefix="/v1", tags=["images"])
DECODE_BODY_BYTES = 64 * 1024  # a digit and a pose are a few hundred bytes of JSON; 413 beyond, unread
Token = Annotated[str, Path(description="the token from a prediction's link (anything else: 404)")]
CACHE_CONTROL = {"Cache-Control": "private, max-age=3600"}
LINK_ERRORS = errors(401, 404, 422, 503)


def reconstruction_params(
    digit: DigitQuery = None,
    scale: ScaleQuery = 1,
    side_by_side: Annotated[bool, Query(description="the input left, the reconstruction right")] = False,
) -> ReconstructionPng:
    return ReconstructionPng(digit, scale, side_by_side)


def tweak_params(
    digit: DigitQuery = None,
    dims: Annotated[
        list[str] | None,
        Query(
            description="pose dimensions, comma-separated or repeated, each at most once (empty: all)",
        ),
    ] = None,
    steps: Annotated[WholeNumber, Query(ge=2, le=21, description="columns: shifts from low to high")] = 11,
    low: Annotated[float, Query(ge=-1.0, le=1.0)] = -0.25,
    high: Annotated[float, Query(ge=-1.0, le=1.0)] = 0.25,
    scale: ScaleQuery = 1,
) -> TweakPng:
    if low >= high:
        raise InvalidParameter(f"low ({low}) must be below high ({high})")
    return TweakPng(digit, parse_dims(dims), steps, low, high, scale)


def parse_dims(values: list[str] | None) -> tuple[int, ...] | None:
    """`dims=0,3&dims=7` -> (0, 3, 7); absent or empty -> None (all). The data plane checks the range."""
    items = [item.strip() for value in values or [] for item in value.split(",")]
    items = [item for item in items if item]
    if not items:
        return None
    if not all(item.isdigit() and len(item) <= 4 for item in items):
        raise InvalidParameter("dims must be non-negative integers, comma-separated")
    return tuple(int(item) for item in items)


ReconstructionParams = Annotated[ReconstructionPng, Depends(reconstruction_params)]
TweakParams = Annotated[TweakPng, Depends(tweak_params)]


def png(data: bytes, cacheable: bool = True) -> Response:
    return Response(data, media_type="image/png", headers=CACHE_CONTROL if cacheable else None)


@router.post(
    "/reconstruct", response_class=Response, responses={**PNG, **UPLOAD_ERRORS}, openapi_extra=IMAGE_UPLOAD
)
async def reconstruct(
    plane: PlaneDep, files: ImagesDep, params: ReconstructionParams, preprocess: PreprocessQuery = "auto"
) -> Response:
    """The decoder's reconstruction: 28*scale px square, or 56*scale x 28*scale side by side."""
    return png(await plane.render_upload(files, preprocess, params))


@router.post(
    "/tweak", response_class=Response, responses={**PNG, **UPLOAD_ERRORS}, openapi_extra=IMAGE_UPLOAD
)
async def tweak(
    plane: PlaneDep, files: ImagesDep, params: TweakParams, preprocess: PreprocessQuery = "auto"
) -> Response:
    """One row per pose dimension, one column per step, each cell 28*scale px, no gutters."""
    return png(await plane.render_upload(files, preprocess, params))


@router.post(
    "/decode",
    response_class=Response,
    responses={**PNG, **errors(400, 401, 413, 415, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DecodeRequest.model_json_schema()}},
        }
    },
)
async def decode(request: Request, plane: PlaneDep, scale: ScaleQuery = 1) -> Response:
    """What the decoder draws for a pose you choose: edit a capsule and see the digit change."""
    if not is_json(media_type(request)):
        raise UnsupportedMediaType("send the digit and the pose as application/json")
    body = decode_request(await read_body(request, DECODE_BODY_BYTES, "max_body_bytes"))
    return png(await plane.decode(DecodePng(body.digit, tuple(body.pose), scale)), cacheable=False)


def decode_request(raw: bytes) -> DecodeRequest:
    """The body, read within its small limit (FastAPI would read any size), validated as FastAPI would."""
    try:
        return DecodeRequest.model_validate(parse_json(raw))
    except ValidationError as e:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in e.errors(include_url=False)]
        ) from e


@router.get("/inputs/{token}.png", response_class=Response, responses={**PNG, **LINK_ERRORS})
async def input_png(plane: PlaneDep, token: Token, scale: ScaleQuery = 1) -> Response:
    """The preprocessed 28x28 input the model saw."""
    return png(await plane.render_link(token, InputPng(scale)))


@router.get("/reconstructions/{token}.png", response_class=Response, responses={**PNG, **LINK_ERRORS})
async def reconstruction_png(plane: PlaneDep, token: Token, params: ReconstructionParams) -> Response:
    return png(await plane.render_link(token, params))


@router.get("/tweaks/{token}.png", response_class=Response, responses={**PNG, **LINK_ERRORS})
async def tweak_png(plane: PlaneDep, token: Token, params: TweakParams) -> Response:
    return png(await plane.render_link(token, params))
