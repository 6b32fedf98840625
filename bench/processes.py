"""Server processes for the load test: start, wait until ready, pause, read CPU time and memory, stop.

All servers stay up for the whole run so that their points can be interleaved, but only the one
under load runs: the others are paused (SIGSTOP to every process of their tree, not only their
process group: LitServe's workers leave it), because an idle server is not free (LitServe's
processes poll their queues) and would take CPU from the one measured.
CPU time and resident memory are summed over a server's whole process tree (read from /proc),
because LitServe runs its inference worker in a child process: a figure of the parent alone
would make it look cheaper than it is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerSpec:
    name: str
    port: int
    command: list[str]
    env: dict[str, str]
    ready_path: str


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    process: subprocess.Popen
    ready_s: float


def start(spec: ServerSpec, cwd: Path, timeout: float = 180.0) -> Server:
    """Starts the server in its own process group and returns once `ready_path` answers 200."""
    began = time.perf_counter()
    process = subprocess.Popen(spec.command, env={**os.environ, **spec.env}, cwd=cwd, start_new_session=True)
    url = f"http://127.0.0.1:{spec.port}{spec.ready_path}"
    while time.perf_counter() - began < timeout:
        if process.poll() is not None:
            raise SystemExit(f"{spec.name} exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return Server(spec.name, spec.port, process, time.perf_counter() - began)
        except OSError:
            pass
        time.sleep(0.1)
    stop(Server(spec.name, spec.port, process, 0.0))
    raise SystemExit(f"{spec.name} was not ready within {timeout:.0f} s")


def pause(server: Server) -> None:
    signal_all(process_tree(server.process.pid), signal.SIGSTOP)


def resume(server: Server) -> None:
    signal_all(process_tree(server.process.pid), signal.SIGCONT)


def stop(server: Server) -> None:
    """SIGTERM to the server's whole process tree (LitServe's workers included), SIGKILL to
    whatever of it lingers."""
    tree = process_tree(server.process.pid)  # before the parent exits and its children are orphaned
    signal_all(tree, signal.SIGCONT)
    signal_all(tree, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=30)
    signal_all(tree, signal.SIGKILL)
    server.process.wait()


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def resident_mb(pid: int) -> float:
    """Resident memory (VmRSS) of the process tree in MiB."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total_kb += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0
        )
    return total_kb / 1024
