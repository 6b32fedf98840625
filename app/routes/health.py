"""Probes and metrics: liveness, readiness (Kubernetes semantics) and Prometheus exposition.

The probes answer HEAD as well as GET, as some load balancers and uptime checkers send HEAD.

None of these need the API key: probes and scrapers do not carry one.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import errors, get_plane
from app.schemas import Status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Status)
@router.head("/healthz", response_model=Status, operation_id="healthz_head")
async def healthz() -> Status:
    """Liveness: answers at once while the process lives, loaded or not."""
    return Status(status="ok")


@router.get("/readyz", response_model=Status, responses=errors(503))
@router.head("/readyz", response_model=Status, responses=errors(503), operation_id="readyz_head")
async def readyz(request: Request) -> Status:
    """Readiness: 503 until the weights are loaded and warmed up (or when they failed to), 200 after."""
    await get_plane(request)
    return Status(status="ready")


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
