"""`capsnet-serve`: uvicorn on `app.main:app`, configured by the CAPSNET_* environment variables.

One worker on purpose: each worker process would load its own copy of the model (and take its
own share of the GPU) and batch only its own requests. Scale out with replicas instead.
On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish for up to
CAPSNET_DRAIN_SECONDS, then runs the lifespan shutdown.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys

import uvicorn
from pydantic import ValidationError

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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # uvicorn drains, restores the handler it found and re-raises SIGTERM: exiting 0 there makes
    # a requested stop a clean exit (status 0), not a death by signal (143 under Docker).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        workers=1,
        timeout_graceful_shutdown=int(settings.drain_seconds),
    )


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
