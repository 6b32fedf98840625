"""Dependencies shared by the routes, as `Annotated` aliases, and the query parameters they share."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader

from app.engine import Engine
from app.errors import ModelNotReady, Unauthorized
from app.imaging import Preprocess
from app.schemas import ErrorResponse
from app.settings import Settings, get_settings
from app.uploads import read_images

SettingsDep = Annotated[Settings, Depends(get_settings)]
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="needed when CAPSNET_API_KEY is set"
)


def get_engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise ModelNotReady("the model is still loading; retry shortly")
    return engine


def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(api_key_header)]) -> None:
    expected = settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("missing or wrong X-API-Key header")


async def uploaded_images(request: Request, settings: SettingsDep) -> list[bytes]:
    return await read_images(request, settings)


EngineDep = Annotated[Engine, Depends(get_engine)]
ImagesDep = Annotated[list[bytes], Depends(uploaded_images)]
PreprocessQuery = Annotated[
    Preprocess, Query(description="auto: MNIST-style preprocessing; none: a 28x28 image fed as it is")
]
ScaleQuery = Annotated[int, Query(ge=1, le=16, description="each model pixel becomes scale x scale pixels")]
DigitQuery = Annotated[
    int | None, Query(ge=0, le=9, description="the capsule to decode (default: predicted)")
]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "empty body, undecodable image or malformed upload",
        401: "missing or wrong X-API-Key (only when the server sets CAPSNET_API_KEY)",
        413: "upload over CAPSNET_MAX_UPLOAD_BYTES, or an image over CAPSNET_MAX_IMAGE_PIXELS",
        415: "unsupported content type or image format",
        422: "no digit found, too many images, or a parameter out of range",
        503: "model still loading, or overloaded (see Retry-After)",
    }.items()
}
IMAGE_UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "format": "byte"}}
                    },
                    "required": ["images"],
                },
                "example": {"images": ["iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAA..."]},
            },
        },
    }
}
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
