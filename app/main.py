"""`create_app()`: the lifespan that loads the model, the routers, the middleware, the error handlers.

The weights load in a background task started by the lifespan, so the server answers /healthz
at once and /readyz with 503 until the model is loaded and warmed up. A load that fails is
terminal: the reason is logged and `app.state.stop` (set by `capsnet-serve` to stop uvicorn) is
called, so the process exits non-zero and its supervisor restarts it. The lifespan resolves the
settings once, from `get_settings` or a test's override of it, and keeps them in `app.state` for
the routes; only CORS, a middleware fixed when the app is built, reads them at build time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app.batcher import Batcher
from app.deps import require_api_key
from app.engine import DataPlane
from app.errors import LastResortMiddleware, install_error_handlers
from app.loading import load_model
from app.metrics import HttpMetricsMiddleware, Metrics
from app.request_id import RequestIdMiddleware, install_log_record_factory
from app.routes import health, images, meta, page, predict, v2
from app.settings import Settings, get_settings

log = logging.getLogger("capsnet.serve")


async def start_engine(app: FastAPI, settings: Settings) -> None:
    """Loads in a worker thread, then starts the batcher; a failure is logged and stops the server."""
    metrics: Metrics = app.state.metrics
    try:
        loaded = await asyncio.to_thread(load_model, settings)
    except Exception as e:
        log.critical("could not load the model from %s: %s; stopping", settings.weights, e)
        app.state.load_error = str(e)
        app.state.stop()
        return
    batcher = Batcher(
        loaded.model,
        loaded.device,
        metrics,
        max_batch_size=settings.max_batch_size if settings.batching else 1,
        max_wait_s=settings.max_batch_wait_ms / 1000 if settings.batching else 0.0,
        max_queue=settings.max_queue,
        precision=loaded.precision,
    )
    batcher.start()
    metrics.model_load.set(loaded.seconds)
    app.state.plane = DataPlane(batcher, loaded.info, loaded.digit_rule, metrics, settings)
    metrics.ready.set(1)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.dependency_overrides.get(get_settings, get_settings)()
    configure_logging(settings.log_level)
    app.state.settings, app.state.plane, app.state.load_error = settings, None, None
    loading = asyncio.create_task(start_engine(app, settings))
    try:
        yield
    finally:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        if app.state.plane is not None:
            await app.state.plane.batcher.close()
        app.state.metrics.ready.set(0)


def create_app() -> FastAPI:
    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the package, not a CDN
    app = FastAPIOffline(
        title="capsnet-serve",
        summary="A Capsule Network (Sabour, Frosst & Hinton 2017) that reads handwritten digits.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    app.state.settings, app.state.plane, app.state.load_error = None, None, None
    app.state.stop = lambda: None  # capsnet-serve replaces it with "stop uvicorn"
    app.include_router(health.router)
    app.include_router(v2.health)
    secured = [Depends(require_api_key)]
    for resource in (predict, images, meta, v2):
        app.include_router(resource.router, dependencies=secured)
    app.include_router(page.router)  # the demo page at /
    page.mount_static(app)
    install_error_handlers(app)
    origins = get_settings().cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Outermost last: metrics see every final status, the request id covers the last-resort answers.
    app.add_middleware(LastResortMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.metrics)
    return app


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure_logging(level: str) -> None:
    """Every log line names the request it is about ("-" outside one)."""
    install_log_record_factory()
    logging.basicConfig(format=LOG_FORMAT)  # a no-op where logging is already set up
    logging.getLogger("capsnet").setLevel(level.upper())


app = create_app()
