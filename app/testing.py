"""Running the service as a process, for the tests and benchmarks that need a real server.

As `fastapi.testclient` ships with FastAPI, these ship with the app: a free loopback port to start
it on, and a wait until its `/readyz` says the model is loaded, which fails fast, with the end of
the server's log, when the process dies instead.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class ServerNotReady(RuntimeError):
    """The server exited, or did not become ready in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(
    base_url: str, server: subprocess.Popen, timeout: float = 120.0, log: Path | None = None
) -> float:
    """Polls `base_url/readyz` until it answers 200; returns the seconds that took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.poll() is not None:
            raise ServerNotReady(f"the server exited with status {server.returncode}{tail(log)}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or 503 while the model loads
        time.sleep(0.05)
    raise ServerNotReady(f"the server was not ready within {timeout:.0f} s{tail(log)}")


def tail(log: Path | None, chars: int = 3000) -> str:
    return f":\n{log.read_text(errors='replace')[-chars:]}" if log is not None and log.exists() else ""
