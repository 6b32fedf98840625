"""Load test for POST /v1/predict: throughput and latency percentiles, micro-batching on and off.

Starts the service itself (`capsnet-serve` on a free loopback port) once with
CAPSNET_BATCHING=on and once with off, and for each reports the start-up time to ready, then
throughput and p50/p95/p99 latency at 1, 8 and 32 concurrent clients, then the server's resident
memory (current and peak).

Why an async httpx2 client and not locust: locust is the well-known tool, but it is built for
distributed open-ended load with a web UI and a gevent runtime, and would be one more dependency.
Here the question is narrow (closed-loop clients against one process on the same 2-core machine,
batching on versus off, in one scripted run), httpx2 is already a test dependency, and one asyncio
client process costs little CPU beside the server, so it skews the measurement less than
locust's worker processes would. Each client sends one image per request and waits for the
answer before sending the next (closed loop), which is what "N concurrent clients" means below.

The service's input cache is made useless on purpose (CAPSNET_SAMPLE_CACHE_BYTES=0 and a different
MNIST test digit for every request), so every request pays for its forward pass.

    python bench/load_test.py                 # 20 s per point, 1/8/32 clients
    python bench/load_test.py --duration 3    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import numpy as np
from PIL import Image

from app.testing import free_port, wait_ready
from model.data import load_mnist

REPO = Path(__file__).resolve().parent.parent
ROW = "{:<12} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>6}"


def mnist_pngs(count: int) -> list[bytes]:
    pngs = []
    for image in load_mnist().test.images[:count]:
        out = io.BytesIO()
        Image.fromarray(image).save(out, "PNG")
        pngs.append(out.getvalue())
    return pngs


def start_server(port: int, batching: bool, weights: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CAPSNET_PORT": str(port),
        "CAPSNET_HOST": "127.0.0.1",
        "CAPSNET_BATCHING": "on" if batching else "off",
        "CAPSNET_WEIGHTS": str(weights),
        "CAPSNET_SAMPLE_CACHE_BYTES": "0",
        "CAPSNET_LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-c", "from app.cli import main; main()"]
    return subprocess.Popen(cmd, env=env, cwd=REPO)


def resident_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB from /proc: the resident memory now and at its peak."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


async def run_clients(base: str, pngs: list[bytes], clients: int, duration: float) -> tuple[list[float], int]:
    """Closed loop: each client posts, awaits the answer, posts again until `duration` ends."""
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    deadline = time.perf_counter() + duration
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                data = pngs[next(counter) % len(pngs)]
                start = time.perf_counter()
                r = await client.post("/v1/predict", files={"file": ("d.png", data, "image/png")})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, errors


def report(mode: str, clients: int, latencies: list[float], errors: int, duration: float) -> None:
    ms = np.array(latencies) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
    row = [
        mode,
        clients,
        len(ms),
        f"{len(ms) / duration:.1f}",
        f"{p50:.1f}",
        f"{p95:.1f}",
        f"{p99:.1f}",
        errors,
    ]
    print(ROW.format(*row), flush=True)


def bench_mode(batching: bool, args: argparse.Namespace, pngs: list[bytes]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, batching, args.weights)
    mode = "batching on" if batching else "batching off"
    try:
        startup = wait_ready(base, server)
        print(f"{mode}: ready in {startup:.2f} s, resident {resident_mb(server.pid)[0]:.0f} MiB", flush=True)
        asyncio.run(run_clients(base, pngs, max(args.clients), args.warmup))  # warm up, not reported
        for clients in args.clients:
            latencies, errors = asyncio.run(run_clients(base, pngs, clients, args.duration))
            report(mode, clients, latencies, errors, args.duration)
        rss, peak = resident_mb(server.pid)
        print(f"{mode}: resident memory after the run {rss:.0f} MiB (peak {peak:.0f} MiB)", flush=True)
    finally:
        server.terminate()  # SIGTERM: the graceful path
        server.wait(timeout=60)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per measurement (default: 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unreported load first (default: 3)")
    p.add_argument(
        "--clients",
        type=lambda s: [int(c) for c in s.split(",")],
        default=[1, 8, 32],
        help="(default: 1,8,32)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=REPO / "weights" / "capsnet-mnist.safetensors",
        help="(default: weights/capsnet-mnist.safetensors)",
    )
    p.add_argument(
        "--images", type=int, default=10_000, help="distinct MNIST test digits to send (default: all)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pngs = mnist_pngs(args.images)
    print(
        f"POST /v1/predict, one MNIST digit per request, {args.duration:g} s per point, {os.cpu_count()} CPUs"
    )
    print(ROW.format("mode", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"))
    for batching in (True, False):
        bench_mode(batching, args, pngs)


if __name__ == "__main__":
    main()
