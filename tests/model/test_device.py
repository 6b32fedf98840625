"""Device selection: `auto` falls back to the CPU; a GPU that is not there is a clear error."""

from __future__ import annotations

import pytest
import torch

from model.device import DeviceUnavailable, resolve_device


def test_auto_picks_the_gpu_only_when_there_is_one() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_names_the_problem() -> None:
    with pytest.raises(DeviceUnavailable, match="'cuda:1'.*CUDA is not available"):
        resolve_device("cuda:1")
