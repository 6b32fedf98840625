"""The weights the service ships: loadable, described by their card, and accurate."""

from __future__ import annotations

from pathlib import Path

import torch

from model.checkpoint import load_weights, read_model_card
from model.data import Mnist
from model.evaluate import predict


def test_shipped_weights_classify_a_fixed_test_slice(mnist: Mnist, shipped_weights: Path) -> None:
    model = load_weights(shipped_weights, "cpu")
    split = mnist.test.head(1000)
    accuracy = (predict(model, split, torch.device("cpu")) == split.labels).mean()
    assert accuracy >= 0.993, f"{accuracy:.4f} on the first 1000 test images"


def test_shipped_model_card_records_how_it_was_made(shipped_weights: Path) -> None:
    card = read_model_card(shipped_weights)
    assert card["format_version"] == 1
    # trained by capsnet-train, or the mean of such weights (capsnet-average), each source named
    runs = [source["training"] for source in card["training"].get("averaged_from", [])] or [card["training"]]
    for run in runs:
        assert run["recipe"]["epochs"] >= 1 and run["validation_accuracy"] >= 0.99
    evaluation = card["evaluation"]  # written by `capsnet-evaluate --update-card` on all 10k
    assert evaluation["split"] == "test" and evaluation["images"] == 10_000
    assert evaluation["errors"] == round(evaluation["error"] * 10_000)
