"""Starting from saved weights (`--init-weights`) instead of a random init, and saying so.

The new run keeps the saved weights' config but trains with its own routing iterations; its
cards record the file's hash and its card's training and evaluation record, so a model
continued on a bigger machine still shows where it came from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import load_weights, read_model_card
from model.data import sha256_file


def initial_model(init_weights: Path | None, routing_iterations: int) -> CapsNet:
    """A random init, or the weights of `--init-weights` (their config, this run's routing)."""
    if init_weights is None:
        return CapsNet(CapsNetConfig(routing_iterations=routing_iterations))
    initial = load_weights(init_weights)
    model = CapsNet(replace(initial.config, routing_iterations=routing_iterations))
    model.load_state_dict(initial.state_dict())
    return model


def lineage(init_weights: Path | None) -> dict[str, Any]:
    """What a warm-started run began from: the file's hash and its card's training record."""
    if init_weights is None:
        return {}
    card = read_model_card(init_weights)
    return {
        "initialized_from": {
            "weights": init_weights.name,
            "sha256": sha256_file(init_weights),
            "training": card.get("training"),
            "evaluation": card.get("evaluation"),
        }
    }
