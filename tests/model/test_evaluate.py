"""The evaluate CLI: accuracy, per-class accuracy, PNG reports and the model card update."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from PIL import Image

import model.evaluate as evaluate_module
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import read_model_card, save_weights, write_model_card
from model.data import sha256_file
from model.evaluate import (
    compare_errors,
    confusion_matrix,
    evaluate,
    main,
    record_evaluation,
    summarize,
    wilson_interval,
)
from model.plots import plot_training_curves


def test_confusion_matrix_and_summary() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 2, 0])
    matrix = confusion_matrix(labels, predictions, num_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    result = summarize(matrix, "test")
    assert result["accuracy"] == 4 / 6 and result["errors"] == 2
    assert result["per_class_accuracy"] == {"0": 0.5, "1": 1.0, "2": 2 / 3}
    assert result["accuracy_95ci"] == list(wilson_interval(4, 6))


def test_the_card_keeps_each_precisions_accuracy_and_fp32_stays_the_headline() -> None:
    fp32 = summarize(np.diag([5, 5]), "test", "fp32")
    bf16 = summarize(np.array([[5, 0], [1, 4]]), "test", "bf16")
    card = record_evaluation(record_evaluation({"labels": ["0", "1"]}, fp32), bf16)
    assert card["labels"] == ["0", "1"] and card["evaluation"]["accuracy"] == 1.0
    assert card["evaluation"]["by_precision"]["fp32"]["errors"] == 0
    assert card["evaluation"]["by_precision"]["bf16"]["errors"] == 1
    again = record_evaluation(card, fp32)  # re-evaluating fp32 keeps the bf16 figure
    assert again["evaluation"]["by_precision"]["bf16"]["accuracy"] == 0.9


def test_wilson_interval_matches_hand_computed_values() -> None:
    # 8 of 10: the textbook Wilson interval (0.490, 0.943); 42 errors in 10k: 99.43-99.69%
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(9958, 10000) == pytest.approx((0.99433, 0.99689), abs=1e-5)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_compare_errors_counts_shared_mistakes_and_disagreements() -> None:
    labels = np.array([0, 1, 2, 3, 4])
    first = np.array([0, 7, 7, 3, 4])  # wrong on images 1 and 2
    second = np.array([0, 7, 8, 3, 9])  # wrong on 1, 2 and 4; a different wrong digit on 2
    assert compare_errors(labels, first, second) == {"errors": 3, "shared_errors": 2, "disagreements": 2}


def test_cli_compares_two_models_on_the_same_images(tmp_path: Path) -> None:
    config = CapsNetConfig(conv1_channels=8, primary_types=2)
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    torch.manual_seed(0)
    save_weights(CapsNet(config), first)
    save_weights(CapsNet(config), second)
    args = ["--weights", str(first), "--limit", "50", "--device", "cpu", "--out-dir", str(tmp_path)]
    alone = evaluate(args)
    same = evaluate([*args, "--compare", str(first)])["comparison"]
    assert same == {
        "weights": str(first),
        "errors": alone["errors"],
        "shared_errors": alone["errors"],
        "disagreements": 0,
    }
    other = evaluate([*args, "--compare", str(second)])["comparison"]
    assert other["shared_errors"] <= min(alone["errors"], other["errors"])
    assert other["disagreements"] > 0  # two random inits do not predict alike


def test_cli_reports_and_updates_the_card(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_weights(CapsNet(CapsNetConfig(conv1_channels=8, primary_types=2)), weights)
    write_model_card(weights, {**read_model_card(weights), "weights_sha256": "of weights copied over"})
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "epoch": e,
                    "train_loss": 1 / e,
                    "train_margin_loss": 0.9 / e,
                    "val_loss": 1.1 / e,
                    "train_accuracy": 1 - 0.1 / e,
                    "val_accuracy": 1 - 0.12 / e,
                }
            )
            + "\n"
            for e in (1, 2, 3)
        )
    )
    out = tmp_path / "reports"
    result = evaluate(
        [
            "--weights",
            str(weights),
            "--limit",
            "200",
            "--metrics-log",
            str(log),
            "--out-dir",
            str(out),
            "--update-card",
            "--device",
            "cpu",
        ]
    )
    assert result["images"] == 200 and 0 <= result["accuracy"] <= 1
    assert read_model_card(weights)["evaluation"]["accuracy"] == result["accuracy"]
    assert read_model_card(weights)["weights_sha256"] == sha256_file(weights)
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert Image.open(out / name).size[0] > 300
    shutil.rmtree(out)


def test_a_full_train_runs_curves_do_not_call_its_validation_held_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "w.safetensors"
    config = CapsNetConfig(conv1_channels=8, primary_types=2)
    save_weights(CapsNet(config), weights, {"training": {"validation_held_out": False}})
    labels: list[str] = []
    monkeypatch.setattr(evaluate_module, "plot_training_curves", lambda _log, _png, name: labels.append(name))
    args = ["--weights", str(weights), "--limit", "20", "--device", "cpu", "--out-dir", str(tmp_path)]
    evaluate([*args, "--metrics-log", str(tmp_path / "metrics.jsonl")])
    assert labels == ["validation (trained on)"]


def test_the_curves_show_a_weight_average_from_the_epoch_it_began(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = {"train_loss": 0.1, "train_margin_loss": 0.05, "val_loss": 0.1, "train_accuracy": 0.9}
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        json.dumps({"epoch": 1, **record, "val_accuracy": 0.9})
        + "\n"
        + json.dumps({"epoch": 2, **record, "val_accuracy": 0.91, "swa_val_accuracy": 0.95})
        + "\n"
    )
    lines: dict[str, tuple[list, list]] = {}
    plot = Axes.plot
    monkeypatch.setattr(
        Axes, "plot", lambda ax, x, y, label: (lines.setdefault(label, (x, y)), plot(ax, x, y, label=label))
    )
    plot_training_curves(log, tmp_path / "curves.png", "validation (trained on)")
    assert lines["weight average, validation (trained on)"] == ([2], [95.0])
    assert lines["validation (trained on)"] == ([1, 2], [90.0, 91.0])


def test_console_script_exits_zero(shipped_weights: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "capsnet-evaluate"
    cmd = [str(script), "--weights", str(shipped_weights), "--limit", "20", "--out-dir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""  # the progress bar shows on a terminal only
    lines = result.stdout.splitlines()
    assert lines[0] == f"{shipped_weights}: the test split, 20 images, on cpu in fp32"
    assert lines[1].startswith("test accuracy in fp32 ")
    assert lines[-1] == f"wrote {tmp_path / 'confusion_matrix.png'}"


def test_weights_that_cannot_load_end_the_command_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"^capsnet-evaluate: weights file not found: .*none\.safetensors$"):
        main(["--weights", str(tmp_path / "none.safetensors")])
