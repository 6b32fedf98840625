"""Bounds that only the HTTP server can enforce: read deadlines and a cap on open connections.

uvicorn times out idle keep-alive connections but not a client that sends its request slowly
(slowloris): a connection dribbling one byte every 100 ms is held forever, and enough of them use
up the process's file descriptors. This protocol (uvicorn's httptools one, with three additions)
gives each request `CAPSNET_HEADER_TIMEOUT_S` from its first byte (or from the connection's
opening) to finish its headers and then `CAPSNET_BODY_TIMEOUT_S` to finish its body, answering
408 and closing the connection when either runs out, and it answers 503 and closes at once a
connection over `CAPSNET_MAX_CONNECTIONS`. Both answers use the service's JSON error format.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.errors import TIMED_OUT
from app.request_id import HEADER, SANE, new_request_id

log = logging.getLogger("capsnet.serve")


def raw_error(status: int, code: str, message: str, request_id: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 error response in the service's format, for when no app runs."""
    body = json.dumps({"error": {"code": code, "message": message, "request_id": request_id}}).encode()
    headers = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        f"{HEADER.lower()}: {request_id}",
    ]
    if retry_after is not None:
        headers.append(f"retry-after: {retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


class BoundedHttpProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    body_timeout_s = 60.0
    max_connections = 512

    def __init__(self, config: Config, server_state: ServerState, **kwargs: object) -> None:
        super().__init__(config, server_state, **kwargs)  # type: ignore[arg-type]
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "headers"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning(
                "refusing a connection: %d are open, the limit is %d",
                len(self.connections),
                self.max_connections,
            )
            message = f"more than {self.max_connections} connections are open; retry shortly"
            self._refuse(raw_error(503, "overloaded", message, new_request_id(), retry_after=1))
            return
        self._arm("headers", self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a keep-alive connection's next request: its clock starts now
            self._arm("headers", self.header_timeout_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm("body", self.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        seconds = self.header_timeout_s if self._phase == "headers" else self.body_timeout_s
        log.warning("closing a connection that took over %.0f s to send its request %s", seconds, self._phase)
        given = dict(self.headers or []).get(HEADER.lower().encode(), b"").decode("latin-1")
        request_id = given if SANE.fullmatch(given) else new_request_id()
        message = f"the request's {self._phase} took longer than {seconds:g} s to arrive"
        self._refuse(raw_error(408, "request_timeout", message, request_id))

    def _refuse(self, response: bytes) -> None:
        """Answers, unless the app already began to, and closes: the app sees a disconnect."""
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(response)
        if cycle is not None:
            cycle.scope["state"][TIMED_OUT] = True  # the app counts it as 408, not as the client leaving
            cycle.disconnected = True  # from now on the app's sends are dropped, its receive says so
            cycle.message_event.set()
        self.transport.close()


def bounded_protocol(
    header_timeout_s: float, body_timeout_s: float, max_connections: int
) -> type[BoundedHttpProtocol]:
    """The protocol class for uvicorn's `http=` setting, with these limits."""
    limits = {
        "header_timeout_s": header_timeout_s,
        "body_timeout_s": body_timeout_s,
        "max_connections": max_connections,
    }
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), limits)
