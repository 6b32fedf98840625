"""Load test: the service against its peers, under the same wrk load, in the same run.

Starts four servers on loopback ports, all serving the same weights on the same device:
  service            capsnet-serve, micro-batching on
  service-unbatched  capsnet-serve, CAPSNET_BATCHING=off (one forward pass per image)
  service-cpus-less-one  capsnet-serve, CAPSNET_CPU_THREADS = one CPU fewer than the default, left
                     to HTTP and preprocessing (only when named in --servers)
  litserve           bench/peers/litserve_app.py (batch 32, 5 ms window; `pip install -e '.[bench]'`)
  naive              bench/peers/naive_app.py (FastAPI, one forward pass per request in the threadpool)
then drives each with wrk (a compiled closed-loop generator: `apt-get install wrk`) at 1, 8 and 32
connections. The points are interleaved (every server at 1 connection, then every server at 8,
...), so a neighbour's load on a shared machine falls on all of them alike; read the ratios.

Every request is POST /v1/predict with one MNIST test digit as a multipart PNG, rotating through
`--images` distinct digits (more than the service's input cache holds), so every request pays
for a real forward pass. Printed per point: req/s, p50 and p99 latency, CPU time per request
(all the server's processes); per server: resident memory after the last point (summed over its
processes); then the ratios the service is held to.

    python bench/load_test.py                               # 15 s per point, CPU
    python bench/load_test.py --duration 5 --warmup 2       # a quick run
    python bench/load_test.py --device cuda --duration 5    # on a GPU
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import processes  # bench/processes.py, beside this script
import torch
from PIL import Image

from app.testing import free_port
from model.data import load_mnist

REPO = Path(__file__).resolve().parent.parent
LUA = REPO / "bench" / "wrk_predict.lua"
BOUNDARY = "capsnetbenchboundary"
SERVERS = ("service", "service-unbatched", "litserve", "naive")
VARIANTS = ("service-cpus-less-one",)


@dataclass(frozen=True)
class Point:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, with the bf16 instructions it has, if any."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in fields.get("flags", "").split()]
    return fields.get("model name", platform.machine()) + (f" ({', '.join(bf16)})" if bf16 else "")


def write_bodies(directory: Path, count: int) -> None:
    """`count` MNIST test digits as multipart bodies, back to back, for wrk_predict.lua."""
    lengths = []
    with open(directory / "bodies.bin", "wb") as out:
        for image in load_mnist().test.images[:count]:
            png = io.BytesIO()
            Image.fromarray(image).save(png, "PNG")
            body = (
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
                    f"Content-Type: image/png\r\n\r\n"
                ).encode()
                + png.getvalue()
                + f"\r\n--{BOUNDARY}--\r\n".encode()
            )
            out.write(body)
            lengths.append(len(body))
    (directory / "bodies.idx").write_text("".join(f"{n}\n" for n in lengths))


def server_spec(name: str, port: int, args: argparse.Namespace) -> processes.ServerSpec:
    python = sys.executable
    weights = str(args.weights.resolve())
    if name.startswith("service"):
        env = {
            "CAPSNET_PORT": str(port),
            "CAPSNET_WEIGHTS": weights,
            "CAPSNET_DEVICE": args.device,
            "CAPSNET_PRECISION": args.precision,
            "CAPSNET_BATCHING": "off" if name == "service-unbatched" else "on",
            "CAPSNET_MAX_BATCH_WAIT_MS": str(args.batch_wait_ms),
            "CAPSNET_LOG_LEVEL": "warning",
        }
        if name == "service-cpus-less-one":
            env["CAPSNET_CPU_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) - 1))
        return processes.ServerSpec(
            name, port, [python, "-c", "from app.cli import main; main()"], env, "/readyz"
        )
    peer = ["--port", str(port), "--weights", weights, "--device", args.device]
    peer += ["--precision", args.peer_precision]
    script = str(REPO / "bench" / "peers" / f"{name}_app.py")
    return processes.ServerSpec(
        name, port, [python, script, *peer], {}, "/health" if name == "litserve" else "/readyz"
    )


def predict_path(name: str, args: argparse.Namespace) -> str:
    """The service is asked for `--service-preprocess`; the peers take no parameter."""
    return (
        f"/v1/predict?preprocess={args.service_preprocess}" if name.startswith("service") else "/v1/predict"
    )


def wrk(
    server: processes.Server, connections: int, duration: int, bodies: Path, path: str, sent: dict[str, int]
) -> tuple[dict[str, int], float]:
    """One wrk run; returns its RESULT line and the CPU seconds the server's processes spent.

    The rotation goes on from where the server's last run stopped: restarted at the first digit,
    a short point would replay what the previous one left in the service's input cache and
    measure the cache, not the model.
    """
    url = f"http://127.0.0.1:{server.port}{path}"
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(LUA), url]
    cpu_before = processes.cpu_seconds(server.process.pid)
    start = str(sent.get(server.name, 0))
    out = subprocess.run(
        [*cmd, "--", str(bodies), BOUNDARY, start], capture_output=True, text=True, check=True
    )
    cpu = processes.cpu_seconds(server.process.pid) - cpu_before
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    sent[server.name] = sent.get(server.name, 0) + result["requests"] + connections  # and those cut off
    return result, cpu


def measure(
    server: processes.Server, connections: int, duration: int, bodies: Path, path: str, sent: dict[str, int]
) -> Point:
    """One point, with the server resumed for it and paused again after."""
    processes.resume(server)
    try:
        result, cpu = wrk(server, connections, duration, bodies, path, sent)
    finally:
        processes.pause(server)
    done = max(result["requests"], 1)
    return Point(
        requests_per_s=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_ms_per_request=1000 * cpu / done,
        errors=result["errors"],
    )


def mean_point(points: list[Point]) -> Point:
    """The rounds' mean of every figure (errors summed)."""
    return Point(
        *(float(np.mean([getattr(p, f) for p in points])) for f in ("requests_per_s", "p50_ms", "p99_ms")),
        float(np.mean([p.cpu_ms_per_request for p in points])),
        sum(p.errors for p in points),
    )


def print_table(
    results: dict[tuple[str, int], Point], rss: dict[str, float], args: argparse.Namespace
) -> None:
    print("\n| server | connections | req/s | p50 ms | p99 ms | p99/p50 | CPU ms/req | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.servers:
        for c in args.connections:
            p = results[name, c]
            print(
                f"| {name} | {c} | {p.requests_per_s:.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                f"{p.p99_ms / p.p50_ms:.2f} | {p.cpu_ms_per_request:.2f} | {p.errors} |"
            )
    top = max(args.connections)
    print(f"\nresident memory after the {top}-connection point (MiB, all of a server's processes):")
    print("  " + ", ".join(f"{name} {rss[name]:.0f}" for name in args.servers))


def print_ratios(
    results: dict[tuple[str, int], Point], rss: dict[str, float], args: argparse.Namespace
) -> None:
    """The service's targets, as ratios within this run."""
    low, top = min(args.connections), max(args.connections)
    s_low, s_top = results["service", low], results["service", top]
    print("\nratios (service / peer; target in brackets):")
    if "naive" in args.servers:
        n = results["naive", low]
        print(
            f"  {low} connection: req/s {s_low.requests_per_s / n.requests_per_s:.2f}x naive [>= 0.9], "
            f"p50 {n.p50_ms / s_low.p50_ms:.2f}x naive's speed [>= 0.9]"
        )
    if "service-unbatched" in args.servers:
        u = results["service-unbatched", low]
        print(f"  {low} connection: p50 {s_low.p50_ms:.1f} ms batched vs {u.p50_ms:.1f} ms unbatched")
    if "service-cpus-less-one" in args.servers:
        for c in args.connections:
            a = results["service-cpus-less-one", c]
            print(
                f"  {c} connections: req/s {results['service', c].requests_per_s / a.requests_per_s:.2f}x, "
                f"p50 {results['service', c].p50_ms:.1f} vs {a.p50_ms:.1f} ms, forward pass on every CPU "
                "vs one CPU fewer"
            )
    if "litserve" in args.servers:
        lit = results["litserve", top]
        print(
            f"  {top} connections: req/s {s_top.requests_per_s / lit.requests_per_s:.2f}x LitServe [>= 1.3]"
        )
    print(
        f"  {top} connections: p99/p50 {s_top.p99_ms / s_top.p50_ms:.2f} [<= 2]; "
        f"resident {rss['service']:.0f} MiB [<= 600 MB]"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=15, help="seconds per point (default: 15)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of unreported load per server (default: 3)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds, averaged (default: 1)")
    p.add_argument(
        "--connections",
        type=lambda s: [int(c) for c in s.split(",")],
        default=[1, 8, 32],
        help="(default: 1,8,32)",
    )
    p.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVERS),
        help=f"any of {','.join(SERVERS + VARIANTS)}; the ratios need service (default: {','.join(SERVERS)})",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N, for every server (default: cpu)")
    p.add_argument("--precision", default="auto", help="the service's CAPSNET_PRECISION (default: auto)")
    p.add_argument("--peer-precision", default="fp32", help="LitServe's and naive's (default: fp32)")
    p.add_argument(
        "--service-preprocess",
        choices=["auto", "none"],
        default="auto",
        help="the service's preprocess parameter: none does what the peers do with a 28x28 digit, "
        "decode it and feed it as it is (default: auto, the photo pipeline)",
    )
    p.add_argument("--batch-wait-ms", type=float, default=0.0, help="CAPSNET_MAX_BATCH_WAIT_MS (default: 0)")
    p.add_argument(
        "--images", type=int, default=10_000, help="distinct MNIST test digits sent (default: all 10,000)"
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=REPO / "weights" / "capsnet-mnist.safetensors",
        help="(default: weights/capsnet-mnist.safetensors)",
    )
    args = p.parse_args(argv)
    unknown = set(args.servers) - set(SERVERS + VARIANTS)
    if unknown or "service" not in args.servers:
        p.error(
            f"--servers takes some of {','.join(SERVERS + VARIANTS)}, service included; got {sorted(unknown)}"
        )
    if shutil.which("wrk") is None:
        p.error("wrk is not installed (Debian: apt-get install -y --no-install-recommends wrk)")
    return args


def run_points(
    servers: list[processes.Server], args: argparse.Namespace, bodies: Path
) -> tuple[dict[tuple[str, int], Point], dict[str, float]]:
    """Every server at each connection count in turn, round after round (alternating the order);
    returns the rounds' mean per point and each server's resident memory after its last point."""
    runs: dict[tuple[str, int], list[Point]] = {}
    rss: dict[str, float] = {}
    sent: dict[str, int] = {}  # requests sent to each server: where its next point goes on rotating

    def point(server: processes.Server, connections: int, duration: int) -> Point:
        return measure(server, connections, duration, bodies, predict_path(server.name, args), sent)

    for server in servers:
        point(server, max(args.connections), args.warmup)  # warm-up, not reported
    for round_ in range(args.rounds):
        for c in args.connections:
            for server in servers if round_ % 2 == 0 else servers[::-1]:
                result = point(server, c, args.duration)
                runs.setdefault((server.name, c), []).append(result)
                print(
                    f"  {server.name:<18} {c:>3} conn  {result.requests_per_s:6.0f} req/s  "
                    f"p50 {result.p50_ms:6.1f}  p99 {result.p99_ms:6.1f} ms",
                    flush=True,
                )
                if c == max(args.connections):
                    rss[server.name] = max(
                        rss.get(server.name, 0.0), processes.resident_mb(server.process.pid)
                    )
    return {key: mean_point(points) for key, points in runs.items()}, rss


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"# {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"device {args.device}, service precision {args.precision}, peers {args.peer_precision}"
    )
    print(f"# python bench/load_test.py {' '.join(sys.argv[1:])}", flush=True)
    servers: list[processes.Server] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_bodies(Path(tmp), args.images)
        try:
            for name in args.servers:
                servers.append(processes.start(server_spec(name, free_port(), args), cwd=REPO))
                processes.pause(servers[-1])
                print(f"{name}: ready in {servers[-1].ready_s:.1f} s", flush=True)
            results, rss = run_points(servers, args, Path(tmp))
        finally:
            for server in servers:
                processes.stop(server)
    print_table(results, rss, args)
    print_ratios(results, rss, args)


if __name__ == "__main__":
    main()
