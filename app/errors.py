"""Error types raised where a problem is found, and the one place that maps them to HTTP.

Every failure a client sees, including FastAPI's own validation errors and unknown routes, has
the same body: `{"error": {"code": ..., "message": ..., "details": ..., "request_id": ...}}`, the
id also being in the `X-Request-ID` header and in every log line about the request; under /v2,
the Open Inference Protocol's `{"error": "..."}`. A client that
goes away before its answer is counted as 499 (nginx's "client closed request"), not as a failure.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.request_id import current_request_id

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

    def about_image(self, index: int, filename: str) -> ServiceError:
        """The same error for image `index` of a request: its message and details name the image."""
        details = {"index": index, "filename": filename}
        if isinstance(self.details, dict):
            details |= self.details
        return type(self)(f"image {index} ({filename}): {self.message}", details)


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


class NotADigit(ServiceError):
    """The digit check (model.nondigit) flagged an input and the client asked to refuse it."""

    status, code = 422, "not_a_digit"


class InvalidParameter(ServiceError):
    status, code = 422, "invalid_parameter"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class ModelNotReady(ServiceError):
    status, code = 503, "model_not_ready"
    headers = {"Retry-After": "5"}


class ModelLoadFailed(ServiceError):
    """The weights could not be loaded: this process is on its way out, another replica may answer."""

    status, code = 503, "model_load_failed"
    headers = {"Retry-After": "5"}


class Overloaded(ServiceError):
    status, code = 503, "overloaded"
    headers = {"Retry-After": "1"}


CLIENT_CLOSED_REQUEST = 499
TIMED_OUT = "read_timed_out"  # set in the request's state by the server when it cut a slow client off
HTTP_CODES = {
    400: "invalid_body",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers=None, path: str = ""
) -> JSONResponse:
    """The error body; on the Open Inference Protocol's paths, its own `{"error": "message"}`."""
    if path == "/v2" or path.startswith("/v2/"):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    body["request_id"] = current_request_id()
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers, request.url.path)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Only the JSON-safe parts: `ctx` may hold exception objects and `input` the whole upload.
    details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    message = "the request has invalid parameters"
    return error_response(422, "invalid_parameter", message, details, path=request.url.path)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # every method the path has, not only those of the first route found
        headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
    return error_response(exc.status_code, code, str(exc.detail), headers=headers, path=request.url.path)


def allowed_methods(request: Request) -> set[str]:
    """The methods some route would take for this path (a path may have one route per method)."""
    routes = request.app.router.routes
    return {
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    }


async def on_client_disconnect(request: Request, exc: ClientDisconnect) -> JSONResponse:
    """The connection closed mid-request: nobody reads this answer, but the metrics count it.

    499 when the client left, 408 when the server cut off a client too slow to send its request.
    """
    if getattr(request.state, TIMED_OUT, False):
        message = "the request took too long to arrive"
        return error_response(408, "request_timeout", message, path=request.url.path)
    log.info("the client disconnected before %s %s was answered", request.method, request.url.path)
    message = "the client disconnected"
    return error_response(CLIENT_CLOSED_REQUEST, "client_closed_request", message, path=request.url.path)


class LastResortMiddleware:
    """Answers what escaped every handler, in the error format, inside the request-id middleware.

    An unexpected exception is a 500 with its traceback logged. A request whose task the server
    cancels (uvicorn does so to whatever is still running when the SIGTERM drain time is over) gets
    a retryable 503 with `Connection: close`, so a client or proxy can send it to another replica.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            if started:
                raise
            log.warning(
                "answering 503: the drain time ran out before %s %s was done", scope["method"], scope["path"]
            )
            headers = {"Retry-After": "1", "Connection": "close"}
            response = error_response(
                503,
                "shutting_down",
                "the server is shutting down; retry",
                headers=headers,
                path=scope["path"],
            )
            await response(scope, receive, send)  # the task ends here, answered, instead of dying
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            message = "the server failed to handle this request"
            response = error_response(500, "internal_error", message, path=scope["path"])
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
