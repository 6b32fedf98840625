"""Probes and metrics: liveness, readiness (Kubernetes semantics) and Prometheus exposition.

None of these need the API key: probes and scrapers do not carry one.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import ERRORS
from app.errors import ModelNotReady
from app.schemas import Status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Status)
async def healthz() -> Status:
    """Liveness: answers at once while the process lives, loaded or not."""
    return Status(status="ok")


@router.get("/readyz", response_model=Status, responses={503: ERRORS[503]})
async def readyz(request: Request) -> Status:
    """Readiness: 503 until the weights are loaded and warmed up, 200 after."""
    if request.app.state.engine is None:
        failure = request.app.state.load_error
        raise ModelNotReady(
            f"loading the model failed: {failure}" if failure else "the model is still loading"
        )
    return Status(status="ready")


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
