"""GET /v1/model: what is being served, on what device, and how accurate its card says it is."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import PlaneDep, errors
from app.schemas import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelInfo, responses=errors(401, 503))
async def model_info(plane: PlaneDep) -> ModelInfo:
    return ModelInfo(**plane.info)
