"""`capsnet-serve` as a process: draining on SIGTERM, cutting off slow clients, dying of bad weights."""

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
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from app.testing import free_port


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


def start_server(weights: Path, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {
        **os.environ,
        "CAPSNET_WEIGHTS": str(weights),
        "CAPSNET_DEVICE": "cpu",
        "CAPSNET_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    cmd = [sys.executable, "-c", "from app.cli import main; main()"]
    server = subprocess.Popen(
        cmd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return server, f"http://127.0.0.1:{port}"


def wait_until_ready(server: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.stdout.read()
        try:
            if httpx2.get(f"{base}/readyz").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.1)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def served(small_weights: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """One server for the tests below; the SIGTERM test, last, stops it."""
    server, base = start_server(small_weights, CAPSNET_DRAIN_SECONDS="3", CAPSNET_HEADER_TIMEOUT_S="1")
    try:
        wait_until_ready(server, base)
        yield server, base
    finally:
        stop(server)


def test_a_client_too_slow_to_send_its_headers_is_cut_off(served: tuple[subprocess.Popen, str]) -> None:
    _, base = served
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = b""
        for _ in range(40):  # a header line every 100 ms, never the blank line that ends them
            try:
                slow.sendall(b"X-Dribble: 1\r\n")
            except OSError:
                break
            time.sleep(0.1)
        slow.settimeout(5)
        while chunk := slow.recv(65536):
            answer += chunk
    assert time.monotonic() - started < 3.5
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
    assert httpx2.get(f"{base}/healthz").status_code == 200


def test_weights_with_a_missing_tensor_make_the_process_exit_non_zero_with_the_reason(
    small_weights: Path, tmp_path: Path
) -> None:
    state = load_file(small_weights)
    missing = next(iter(state))
    del state[missing]
    broken = tmp_path / "broken.safetensors"
    save_file(state, broken, metadata=safe_open(small_weights, "pt").metadata())
    card = small_weights.with_suffix(".json")
    if card.exists():
        (tmp_path / "broken.json").write_text(card.read_text())
    server, _ = start_server(broken)
    try:
        code = server.wait(timeout=60)
        log = server.stdout.read()
        assert code != 0
        assert missing in log and "could not load the model" in log
    finally:
        stop(server)


def test_sigterm_drains_what_finishes_in_time_answers_the_rest_503_and_exits_zero(
    served: tuple[subprocess.Popen, str], png_bytes: Callable[..., bytes], digit_image: np.ndarray
) -> None:
    server, base = served
    boundary = "capsnet-test-boundary"
    results: dict[float, httpx2.Response] = {}

    def send(pause_s: float) -> None:
        results[pause_s] = httpx2.post(
            f"{base}/v1/predict",
            content=slow_multipart(png_bytes(digit_image), boundary, pause_s=pause_s),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=30,
        )

    requests = [threading.Thread(target=send, args=(pause,)) for pause in (1.0, 5.0)]
    for request in requests:
        request.start()
    time.sleep(1.0)  # both uploads have started and wait on their second piece
    server.send_signal(signal.SIGTERM)
    for request in requests:
        request.join(timeout=30)
    in_time, too_late = results[1.0], results[5.0]
    assert in_time.status_code == 200 and len(in_time.json()["predictions"]) == 1
    assert too_late.status_code == 503, too_late.text
    assert too_late.headers["Retry-After"] == "1" and too_late.headers["Connection"] == "close"
    assert too_late.json()["error"]["code"] == "shutting_down"
    assert server.wait(timeout=30) == 0


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
