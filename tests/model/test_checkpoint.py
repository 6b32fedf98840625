"""The shipped format: safetensors + config metadata + model card, strict loading, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import (
    CheckpointError,
    card_mismatch,
    load_training_state,
    load_weights,
    model_card_path,
    read_model_card,
    save_training_state,
    save_weights,
)
from model.data import sha256_file

SMALL = CapsNetConfig(conv1_channels=16, primary_types=4, routing_iterations=2)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[CapsNet, Path]:
    torch.manual_seed(0)
    model = CapsNet(SMALL).eval()
    path = tmp_path / "capsnet.safetensors"
    save_weights(model, path, {"training": {"epochs_trained": 3}})
    return model, path


def rewrite_metadata(path: Path, **changes: object) -> None:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    metadata.update({key: json.dumps(value) for key, value in changes.items()})
    save_file(load_file(path), path, metadata=metadata)


def test_round_trip_gives_identical_outputs(saved: tuple[CapsNet, Path]) -> None:
    model, path = saved
    loaded = load_weights(path, "cpu")
    assert loaded.config == SMALL
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected, actual = model(images), loaded(images)
        assert torch.equal(expected.poses, actual.poses)
        assert torch.equal(expected.lengths, actual.lengths)
        assert torch.equal(expected.reconstruction, actual.reconstruction)
        assert torch.equal(model.tweak_grid(expected.poses[0], 2), loaded.tweak_grid(actual.poses[0], 2))


def test_model_card_describes_the_weights(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    card = json.loads(model_card_path(path).read_text())
    assert card["format_version"] == 1
    assert CapsNetConfig.from_dict(card["config"]) == SMALL
    assert card["labels"] == [str(d) for d in range(10)]
    assert card["input"]["shape"] == [1, 28, 28]
    assert card["training"] == {"epochs_trained": 3}
    assert card["weights_sha256"] == sha256_file(path)
    assert read_model_card(path) == card
    assert card_mismatch(path, card, sha256_file(path)) is None
    assert not list(path.parent.glob("*.tmp"))  # both files were written through a temporary


def test_a_card_beside_other_weights_is_detected(saved: tuple[CapsNet, Path], tmp_path: Path) -> None:
    _, path = saved
    other = tmp_path / "other.safetensors"
    save_weights(CapsNet(SMALL), other)
    path.write_bytes(other.read_bytes())  # new weights copied over, the old card left beside them
    problem = card_mismatch(path, read_model_card(path), sha256_file(path))
    assert problem is not None and "describes other weights" in problem
    model_card_path(path).unlink()
    assert "has no model card" in card_mismatch(path, read_model_card(path), sha256_file(path))


def test_weights_alone_rebuild_the_model(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    model_card_path(path).unlink()
    assert load_weights(path).config == SMALL
    assert read_model_card(path)["config"] == SMALL.to_dict()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_weights_move_between_devices(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    on_gpu = load_weights(path, "cuda")
    assert next(on_gpu.parameters()).is_cuda
    save_weights(on_gpu, path)
    assert not next(load_weights(path, "cpu").parameters()).is_cuda


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_weights(tmp_path / "nope.safetensors")


def test_a_directory_is_named_as_one_with_the_weights_inside(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    with pytest.raises(CheckpointError, match=r"is a directory, not a weights file: .*capsnet\.safetensors"):
        load_weights(path.parent)


def test_corrupted_file(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(CheckpointError, match="corrupted|not a readable"):
        load_weights(path)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_weights(path)


def test_shape_mismatch_is_named(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    rewrite_metadata(path, config={**SMALL.to_dict(), "digit_dim": 8})
    with pytest.raises(
        CheckpointError, match="(?s)do not match the saved config.*size mismatch for digits.weight"
    ):
        load_weights(path)


def test_invalid_config_is_named(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    rewrite_metadata(path, config={**SMALL.to_dict(), "attention_heads": 4})
    with pytest.raises(CheckpointError, match="invalid config.*attention_heads"):
        load_weights(path)


def test_unknown_format_version(saved: tuple[CapsNet, Path]) -> None:
    _, path = saved
    rewrite_metadata(path, format_version=2)
    with pytest.raises(CheckpointError, match="unknown format version 2"):
        load_weights(path)


def test_foreign_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="no capsnet-serve metadata"):
        load_weights(path)


def test_training_state_round_trip(tmp_path: Path) -> None:
    model = CapsNet(SMALL)
    optimizer = torch.optim.Adam(model.parameters())
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "epoch": 4,
    }
    save_training_state(tmp_path / "checkpoint.pt", state)
    restored = load_training_state(tmp_path / "checkpoint.pt")
    assert restored["epoch"] == 4
    assert torch.equal(restored["rng_cpu"], state["rng_cpu"])
    model.load_state_dict(restored["model"])
