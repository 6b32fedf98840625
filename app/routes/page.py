"""The demo page at `/`: static HTML, CSS and JavaScript from `app/static/`.

No build step and no external resources. The page uses only the public `/v1` API, so it needs
no API key of its own; with `CAPSNET_API_KEY` set, its API calls are refused like any other.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


def mount_static(app: FastAPI) -> None:
    """The page's assets under /static (a mount, so it cannot live on the router)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
