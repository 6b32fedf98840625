"""Device selection: `auto` falls back to the CPU; a GPU that is not there is a clear error."""

from __future__ import annotations

import pytest
import torch

from model.device import DeviceUnavailable, resolve_device


@pytest.mark.parametrize(("has_gpu", "expected"), [(True, "cuda"), (False, "cpu")])
def test_auto_picks_the_gpu_only_when_there_is_one(monkeypatch, has_gpu: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_names_the_problem() -> None:
    with pytest.raises(DeviceUnavailable, match="'cuda:1'.*CUDA is not available"):
        resolve_device("cuda:1")
