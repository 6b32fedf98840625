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

from app.testing import free_port, wait_ready


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
    small_weights: Path, png_bytes: Callable[..., bytes], digit_image: np.ndarray, tmp_path: Path
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
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server, 60, log)

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


def test_a_taken_port_is_named_with_the_setting_that_moves_it(small_weights: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "CAPSNET_WEIGHTS": str(small_weights), "CAPSNET_PORT": str(port)}
        cmd = [sys.executable, "-c", "from app.cli import main; main()"]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "CAPSNET_PORT" in result.stderr
    assert "loaded" not in result.stderr
