"""capsnet-average: the parameter-wise mean of like weights, with a card naming every source."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.average import main
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import load_weights, read_model_card, save_weights
from model.data import sha256_file

SMALL = CapsNetConfig(conv1_channels=8, primary_types=2)


def saved(tmp_path: Path, name: str, seed: int, config: CapsNetConfig = SMALL) -> Path:
    torch.manual_seed(seed)
    path = tmp_path / f"{name}.safetensors"
    save_weights(CapsNet(config), path, {"training": {"recipe": {"seed": seed}}})
    return path


def test_the_mean_is_taken_parameter_by_parameter_and_every_source_is_named(tmp_path: Path) -> None:
    sources = [saved(tmp_path, name, seed) for name, seed in (("a", 0), ("b", 1), ("c", 2))]
    main([*map(str, sources), "--out", str(tmp_path / "mean.safetensors")])
    mean = load_weights(tmp_path / "mean.safetensors").state_dict()
    states = [load_weights(path).state_dict() for path in sources]
    for name, tensor in mean.items():
        torch.testing.assert_close(tensor, sum(state[name] for state in states) / 3)
    named = read_model_card(tmp_path / "mean.safetensors")["training"]["averaged_from"]
    assert [(s["weights"], s["sha256"], s["training"]) for s in named] == [
        (path.name, sha256_file(path), {"recipe": {"seed": seed}})
        for path, seed in zip(sources, (0, 1, 2), strict=True)
    ]


def test_weights_of_another_config_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = saved(tmp_path, "wide", 1, CapsNetConfig(conv1_channels=16, primary_types=2))
    out = tmp_path / "mean.safetensors"
    with pytest.raises(SystemExit, match="another config"):
        main([str(saved(tmp_path, "a", 0)), str(other), "--out", str(out)])
    assert not out.exists()


def test_one_file_is_no_average(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(saved(tmp_path, "a", 0)), "--out", str(tmp_path / "mean.safetensors")])
    assert "two or more" in capsys.readouterr().err
