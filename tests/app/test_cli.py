"""`capsnet-serve` as a process: SIGTERM lets an in-flight request finish, then exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slow_multipart(png: bytes, boundary: str, pause_s: float) -> Iterator[bytes]:
    """One `file` part, sent in three pieces with pauses: the request is in flight for a while."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    yield head + png[: len(png) // 2]
    time.sleep(pause_s)
    yield png[len(png) // 2 :]
    time.sleep(pause_s)
    yield f"\r\n--{boundary}--\r\n".encode()


def test_sigterm_drains_in_flight_requests_and_exits_zero(
    small_weights: Path, png_bytes: Callable[..., bytes], digit_image: np.ndarray
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CAPSNET_WEIGHTS": str(small_weights),
        "CAPSNET_DEVICE": "cpu",
        "CAPSNET_PORT": str(port),
        "CAPSNET_DRAIN_SECONDS": "10",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-c", "from app.cli import main; main()"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx2.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)

        result: dict[str, httpx2.Response] = {}
        boundary = "capsnet-test-boundary"

        def send() -> None:
            result["response"] = httpx2.post(
                f"{base}/v1/predict",
                content=slow_multipart(png_bytes(digit_image), boundary, pause_s=1.0),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=30,
            )

        request = threading.Thread(target=send)
        request.start()
        time.sleep(0.5)  # the upload has started and is waiting on its second piece
        server.send_signal(signal.SIGTERM)
        request.join(timeout=30)
        response = result["response"]
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 1
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
