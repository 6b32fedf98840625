"""Prometheus metrics: per-route HTTP counts and latency, and one histogram per serving stage.

As in KServe, each stage has its own latency (preprocess, queue wait, inference, PNG encode),
so a slow p99 can be traced to its stage. Each app gets its own registry, so several apps (as in
tests) never collide in prometheus-client's global one.
"""

from __future__ import annotations

import time
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission import Admission

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "capsnet_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "capsnet_http_request_duration_seconds",
            "HTTP request latency, from the first byte received to the last byte sent",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "capsnet_stage_duration_seconds",
            "Time per serving stage: preprocess, queue, inference, encode",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # each stage's child bound once: `labels()` is a locked lookup on every call
        self.preprocess, self.queue_wait, self.inference, self.encode = (
            self.stage.labels(stage) for stage in ("preprocess", "queue", "inference", "encode")
        )
        self.batch_size = Histogram(
            "capsnet_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("capsnet_queue_depth", "Images waiting for the model", registry=r)
        self.model_load = Gauge(
            "capsnet_model_load_seconds", "Time to load the weights and run the warm-up pass", registry=r
        )
        self.non_digits = Counter(
            "capsnet_non_digit_inputs_total",
            "Inputs the digit check flagged as not a digit (is_digit false), refused or answered",
            registry=r,
        )
        self.admission_capacity = Gauge(
            "capsnet_admission_capacity",
            "Size of each admission budget: images queued for the model, render pixels in progress",
            ["budget"],
            registry=r,
        )
        self.admission_in_use = Gauge(
            "capsnet_admission_in_use",
            "What requests hold of each admission budget now",
            ["budget"],
            registry=r,
        )
        self.admission_refused = Counter(
            "capsnet_admission_refused_total",
            "Requests answered 503 because a budget was full, by the budget that refused",
            ["budget"],
            registry=r,
        )
        self.ready = Gauge("capsnet_ready", "1 once the model is loaded and warmed up", registry=r)
        self.gpu_memory = Gauge(
            "capsnet_gpu_memory_allocated_bytes", "GPU memory held by tensors (0 on the CPU)", registry=r
        )


def watch_admission(metrics: Metrics, admission: Admission) -> None:
    """Exports each budget's capacity, what is held of it (read at scrape time) and its refusals."""
    for budget, capacity in admission.capacity.items():
        metrics.admission_capacity.labels(budget).set(capacity)
        metrics.admission_in_use.labels(budget).set_function(partial(admission.held.__getitem__, budget))
        metrics.admission_refused.labels(budget)  # exported as 0 before the first refusal
    admission.on_refused = lambda budget: metrics.admission_refused.labels(budget).inc()


class HttpMetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware): it sees the final status of every response.

    Routes are labelled by their template (`/v1/inputs/{token}.png`), and unmatched paths as
    `unmatched`, so that label values stay few whatever clients request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            labels = (scope["method"], route_template(scope), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


def route_template(scope: Scope) -> str:
    """The matched route's path template, or `unmatched`.

    FastAPI's routes put themselves in `scope["route"]`; plain Starlette ones (`/openapi.json`,
    static mounts) leave only their `endpoint`, found here among the app's routes.
    """
    route = scope.get("route")
    if route is not None:
        return route.path
    endpoint = scope.get("endpoint")
    for candidate in getattr(scope.get("app"), "routes", []) if endpoint is not None else []:
        if isinstance(candidate, Mount) and candidate.app is endpoint:
            return f"{candidate.path}/{{path}}"
        if getattr(candidate, "endpoint", None) is endpoint:
            return candidate.path
    return "unmatched"
