"""The decoder's pictures as PNGs: reconstructions, tweak grids (figure 4) and edited poses.

POST endpoints take an upload; the GET ones render from an input a prediction has linked to,
by its id, with the same query parameters. All PNGs come from the engine's bounded cache.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.deps import (
    ERRORS,
    IMAGE_UPLOAD,
    PNG,
    DigitQuery,
    EngineDep,
    ImagesDep,
    PreprocessQuery,
    ScaleQuery,
    SettingsDep,
)
from app.engine import Engine, InputPng, PngParams, ReconstructionPng, Sample, TweakPng
from app.errors import InvalidParameter, TooManyImages
from app.imaging import Preprocess
from app.schemas import DecodeRequest
from app.settings import Settings

router = APIRouter(prefix="/v1", tags=["images"])
SampleId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="`id` from a prediction")]
DIMS = 16
CACHE_CONTROL = {"Cache-Control": "private, max-age=3600"}


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
        Query(description="pose dimensions 0-15, comma-separated or repeated (default: all)"),
    ] = None,
    steps: Annotated[int, Query(ge=2, le=21, description="columns: shifts from low to high")] = 11,
    low: Annotated[float, Query(ge=-1.0, le=1.0)] = -0.25,
    high: Annotated[float, Query(ge=-1.0, le=1.0)] = 0.25,
    scale: ScaleQuery = 1,
) -> TweakPng:
    if low >= high:
        raise InvalidParameter(f"low ({low}) must be below high ({high})")
    return TweakPng(digit, parse_dims(dims), steps, low, high, scale)


def parse_dims(values: list[str] | None) -> tuple[int, ...]:
    if not values:
        return tuple(range(DIMS))
    try:
        dims = tuple(int(item) for value in values for item in value.split(",") if item.strip())
    except ValueError as e:
        raise InvalidParameter(f"dims must be integers 0-{DIMS - 1}: {e}") from e
    if not dims or any(not 0 <= d < DIMS for d in dims):
        raise InvalidParameter(f"dims must be integers 0-{DIMS - 1}, got {values}")
    return dims


ReconstructionParams = Annotated[ReconstructionPng, Depends(reconstruction_params)]
TweakParams = Annotated[TweakPng, Depends(tweak_params)]


async def one_sample(
    engine: Engine, files: list[bytes], preprocess: Preprocess, settings: Settings
) -> Sample:
    if len(files) != 1:
        raise TooManyImages(f"this endpoint takes one image, got {len(files)}")
    [sample] = await engine.ingest(files, preprocess, settings.max_image_pixels)
    return sample


async def png_response(engine: Engine, sample: Sample, params: PngParams) -> Response:
    return Response(await engine.render(sample, params), media_type="image/png", headers=CACHE_CONTROL)


@router.post("/reconstruct", response_class=Response, responses={**PNG, **ERRORS}, openapi_extra=IMAGE_UPLOAD)
async def reconstruct(
    engine: EngineDep,
    settings: SettingsDep,
    files: ImagesDep,
    params: ReconstructionParams,
    preprocess: PreprocessQuery = "auto",
) -> Response:
    """The decoder's reconstruction: 28*scale px square, or 56*scale x 28*scale side by side."""
    return await png_response(engine, await one_sample(engine, files, preprocess, settings), params)


@router.post("/tweak", response_class=Response, responses={**PNG, **ERRORS}, openapi_extra=IMAGE_UPLOAD)
async def tweak(
    engine: EngineDep,
    settings: SettingsDep,
    files: ImagesDep,
    params: TweakParams,
    preprocess: PreprocessQuery = "auto",
) -> Response:
    """One row per pose dimension, one column per step, each cell 28*scale px, no gutters."""
    return await png_response(engine, await one_sample(engine, files, preprocess, settings), params)


@router.post("/decode", response_class=Response, responses={**PNG, **ERRORS})
async def decode(engine: EngineDep, body: DecodeRequest, scale: ScaleQuery = 1) -> Response:
    """What the decoder draws for a pose you choose: edit a capsule and see the digit change."""
    return Response(await engine.decode(body.digit, body.pose, scale), media_type="image/png")


@router.get("/inputs/{sample_id}.png", response_class=Response, responses={**PNG, **ERRORS})
async def input_png(engine: EngineDep, sample_id: SampleId, scale: ScaleQuery = 1) -> Response:
    """The preprocessed 28x28 input the model saw."""
    return await png_response(engine, engine.sample(sample_id), InputPng(scale))


@router.get("/reconstructions/{sample_id}.png", response_class=Response, responses={**PNG, **ERRORS})
async def reconstruction_png(
    engine: EngineDep, sample_id: SampleId, params: ReconstructionParams
) -> Response:
    return await png_response(engine, engine.sample(sample_id), params)


@router.get("/tweaks/{sample_id}.png", response_class=Response, responses={**PNG, **ERRORS})
async def tweak_png(engine: EngineDep, sample_id: SampleId, params: TweakParams) -> Response:
    return await png_response(engine, engine.sample(sample_id), params)
