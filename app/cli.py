"""`capsnet-serve`: uvicorn on `app.main:app`, configured by the CAPSNET_* environment variables.

One worker on purpose: each worker process would load its own copy of the model (and take its
own share of the GPU) and batch only its own requests. Scale out with replicas instead.
On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish for up to
CAPSNET_DRAIN_SECONDS, answers what is still running 503 (retry elsewhere), then runs the lifespan
shutdown. Weights that cannot be loaded stop the server too, and the process exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import copy
import signal
import socket
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError
from uvicorn.config import LOGGING_CONFIG

from app.main import LOG_FORMAT, create_app
from app.request_id import install_log_record_factory
from app.server import bounded_protocol
from app.settings import Settings, get_settings
from model.checkpoint import CheckpointError, read_header


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    lines = [
        f"  CAPSNET_{name.upper():<26} (default: {field.get_default(call_default_factory=True)})"
        for name, field in Settings.model_fields.items()
    ]
    epilog = "settings (environment variables):\n" + "\n".join(lines)
    parser = argparse.ArgumentParser(
        prog="capsnet-serve",
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)
    try:
        settings = get_settings()
        read_header(settings.weights)  # fail fast, before binding the port, on a wrong path
        ensure_port_free(settings.host, settings.port)
    except (ValidationError, CheckpointError, PortInUse) as e:
        sys.exit(f"capsnet-serve: {e}")
    install_log_record_factory()
    app = create_app()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config(),
        workers=1,
        http=bounded_protocol(settings.header_timeout_s, settings.body_timeout_s, settings.max_connections),
        timeout_graceful_shutdown=int(settings.drain_seconds),
    )
    server = uvicorn.Server(config)
    app.state.stop = lambda: setattr(server, "should_exit", True)
    # uvicorn drains, restores the handler it found and re-raises SIGTERM: exiting 0 there makes
    # a requested stop a clean exit (status 0), not a death by signal (143 under Docker).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server.run()
    if app.state.load_error is not None:
        sys.exit(f"capsnet-serve: could not load the model: {app.state.load_error}")


def log_config() -> dict[str, Any]:
    """uvicorn's logging, every line (access lines included) in our format with the request id."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["default"]["fmt"] = LOG_FORMAT
    request = '%(client_addr)s - "%(request_line)s" %(status_code)s'
    config["formatters"]["access"]["fmt"] = LOG_FORMAT.replace("%(message)s", request)
    config["loggers"]["capsnet"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


class PortInUse(OSError):
    """Another process listens on the address the service is configured for."""


def ensure_port_free(host: str, port: int) -> None:
    """Binds and releases the address, as uvicorn will, so a taken port is said before any loading."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except OSError as e:
            raise PortInUse(
                f"cannot listen on {host}:{port} ({e.strerror}): another process uses the port; "
                "set CAPSNET_PORT to a free one"
            ) from e
