"""Error types raised where a problem is found, and the one place that maps them to HTTP.

Every failure a client sees, including FastAPI's own validation errors and unknown routes, has
the same body: `{"error": {"code": ..., "message": ..., "details": ...}}`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("capsnet.serve")


class ServiceError(Exception):
    """Base of the errors clients can cause or see; subclasses fix the status and code."""

    status = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class EmptyUpload(ServiceError):
    code = "empty_body"


class InvalidUpload(ServiceError):
    code = "invalid_body"


class InvalidImage(ServiceError):
    code = "invalid_image"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class UploadTooLarge(ServiceError):
    status, code = 413, "upload_too_large"


class ImageTooLarge(ServiceError):
    status, code = 413, "image_too_large"


class TooManyImages(ServiceError):
    status, code = 422, "too_many_images"


class NoDigitFound(ServiceError):
    status, code = 422, "no_digit_found"


class InvalidParameter(ServiceError):
    status, code = 422, "invalid_parameter"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class ModelNotReady(ServiceError):
    status, code = 503, "model_not_ready"
    headers = {"Retry-After": "5"}


class Overloaded(ServiceError):
    status, code = 503, "overloaded"
    headers = {"Retry-After": "1"}


HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, details: Any = None, headers=None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Only the JSON-safe parts: `ctx` may hold exception objects and `input` the whole upload.
    details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return error_response(422, "invalid_parameter", "the request has invalid parameters", details)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the server failed to handle this request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
