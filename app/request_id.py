"""Request ids: every response carries `X-Request-ID`, and every log line about the request names it.

The client's id is kept when it is sane (1-128 characters of letters, digits and `._:-`), so an id
set by a reverse proxy or the caller follows the request through; anything else is replaced by a
new random one. The id lives in a context variable for the request's task (and the threads it
hands work to), so error bodies and log lines find it without passing it around.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_current: ContextVar[str] = ContextVar("request_id", default="-")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    """The id of the request being handled, or "-" outside one."""
    return _current.get()


def install_log_record_factory() -> None:
    """Every log record, whoever logs it (uvicorn's access log included), gets `request_id`."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = _current.get()
        return record

    factory.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER)
        request_id = given if given is not None and SANE.fullmatch(given) else new_request_id()
        _current.set(request_id)  # the request's own task: nothing leaks to other requests

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
