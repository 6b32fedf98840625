"""The helpers that run a real server for tests and benchmarks fail fast and say why."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from app.testing import ServerNotReady, free_port, wait_ready


def test_a_free_port_can_be_bound():
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_a_server_that_dies_is_reported_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("Traceback ...\nOSError: [Errno 98] address already in use\n")
    server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    server.wait()
    with pytest.raises(ServerNotReady, match=r"(?s)exited with status 3:\n.*address already in use"):
        wait_ready(f"http://127.0.0.1:{free_port()}", server, timeout=30, log=log)


def test_a_server_that_never_gets_ready_times_out(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(ServerNotReady, match="not ready within 1 s"):
            wait_ready(f"http://127.0.0.1:{free_port()}", server, timeout=1)
    finally:
        server.kill()
        server.wait()
