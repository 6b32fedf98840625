"""Fixtures for the service tests: a small random model, clients that wait for readiness, PNG bytes."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings, get_settings
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import save_weights

ClientFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised, narrow CapsNet: fast, and enough for everything but accuracy."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    save_weights(CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)), path)
    return path


@pytest.fixture(scope="session")
def trained_weights(shipped_weights: Path) -> Path:
    if not shipped_weights.exists():
        pytest.skip(f"the trained weights are not there yet: {shipped_weights}")
    return shipped_weights


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.02)


@pytest.fixture
def make_client(small_weights: Path) -> Iterator[ClientFactory]:
    """`make_client(**settings)` -> a started, ready TestClient; closed (lifespan shutdown) after the test."""
    stack: list[TestClient] = []

    def make(ready: bool = True, **overrides: object) -> TestClient:
        settings = Settings(**{"weights": small_weights, "device": "cpu", **overrides})
        app = create_app()
        app.dependency_overrides[get_settings] = lambda: settings
        client = TestClient(app)
        client.__enter__()
        stack.append(client)
        if ready:
            wait_ready(client)
        return client

    yield make
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


def png_bytes(pixels: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save: object) -> bytes:
    """uint8 array -> encoded image bytes (PNG unless `fmt` says otherwise)."""
    out = io.BytesIO()
    image = Image.fromarray(pixels)
    if mode is not None:
        image = image.convert(mode)
    image.save(out, format=fmt, **save)
    return out.getvalue()


def stroke_digit(size: int = 28) -> np.ndarray:
    """A synthetic '1'-like vertical bar with a foot: white ink on black, uint8."""
    img = np.zeros((size, size), np.uint8)
    s = size / 28
    img[int(5 * s) : int(23 * s), int(12 * s) : int(16 * s)] = 255
    img[int(20 * s) : int(23 * s), int(9 * s) : int(19 * s)] = 255
    return img


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


@pytest.fixture(name="png_bytes")
def png_bytes_fixture() -> Callable[..., bytes]:
    return png_bytes


@pytest.fixture(name="digit_image")
def digit_image_fixture() -> np.ndarray:
    return stroke_digit()


@pytest.fixture(name="png_size")
def png_size_fixture() -> Callable[[bytes], tuple[int, int]]:
    return png_size


@pytest.fixture(name="wait_ready")
def wait_ready_fixture() -> Callable[[TestClient], None]:
    return wait_ready
