"""Dependencies shared by the routes, as `Annotated` aliases, the query parameters they share, and
each route's documented error statuses."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, BeforeValidator

from app.engine import DataPlane
from app.errors import ModelLoadFailed, ModelNotReady, Unauthorized
from app.imaging import Preprocess
from app.schemas import EXAMPLE_PNG_BASE64, ErrorResponse
from app.settings import Settings
from app.uploads import Upload, read_images

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="needed when CAPSNET_API_KEY is set"
)


# Every dependency on a request's path is a coroutine: FastAPI runs a plain function in the
# threadpool, a thread hop per dependency per request for what is a few attribute reads.


async def app_settings(request: Request) -> Settings:
    """The settings the lifespan started with: `get_settings()`, or a test's override of it."""
    settings: Settings | None = request.app.state.settings
    if settings is None:
        raise ModelNotReady("the service is starting; retry shortly")
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_plane(request: Request) -> DataPlane:
    plane: DataPlane | None = request.app.state.plane
    if plane is None:
        failure = request.app.state.load_error
        if failure is not None:
            raise ModelLoadFailed(f"the model failed to load and this process is stopping: {failure}")
        raise ModelNotReady("the model is still loading; retry shortly")
    return plane


async def require_api_key(
    settings: SettingsDep, key: Annotated[str | None, Security(api_key_header)]
) -> None:
    expected = settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("missing or wrong X-API-Key header")


async def uploaded_images(request: Request, settings: SettingsDep) -> list[Upload]:
    return await read_images(request, settings)


PlaneDep = Annotated[DataPlane, Depends(get_plane)]
ImagesDep = Annotated[list[Upload], Depends(uploaded_images)]
PreprocessQuery = Annotated[
    Preprocess, Query(description="auto: MNIST-style preprocessing; none: a 28x28 image fed as it is")
]


def whole_number(value: object) -> object:
    """A query integer is written as one: `digit=0.0` is refused, as the OpenAPI schema says."""
    if isinstance(value, str) and not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        raise ValueError("must be a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(whole_number)]
ScaleQuery = Annotated[
    WholeNumber, Query(ge=1, le=16, description="each model pixel becomes scale x scale pixels")
]
DigitQuery = Annotated[
    WholeNumber | None, Query(ge=0, le=9, description="the capsule to decode (default: predicted)")
]

ERROR_STATUSES = {
    400: "empty body, undecodable image, malformed upload or JSON",
    401: "missing or wrong X-API-Key (only when the server sets CAPSNET_API_KEY)",
    404: "a link this service did not make",
    413: "body over CAPSNET_MAX_UPLOAD_BYTES, or an image over CAPSNET_MAX_IMAGE_PIXELS",
    415: "unsupported content type or image format",
    422: "no digit found, not a digit (reject_non_digits), too many images, a parameter out of range "
    "or a PNG over the output limit",
    503: "model loading or failed to load, overloaded, or shutting down (see Retry-After)",
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def errors(
    *statuses: int, model: type[BaseModel] = ErrorResponse, descriptions: dict[int, str] = ERROR_STATUSES
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for these error statuses, in one error format (/v1's by default)."""
    return {
        status: {
            "model": model,
            "description": descriptions[status],
            **({"headers": RETRY_AFTER} if status == 503 else {}),
        }
        for status in statuses
    }


UPLOAD_ERRORS = errors(400, 401, 413, 415, 422, 503)
IMAGE_UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                        }
                    },
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "byte"},
                            "minItems": 1,
                        }
                    },
                    "required": ["images"],
                },
                "example": {"images": [EXAMPLE_PNG_BASE64]},
            },
        },
    }
}
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
