"""The service's host CPU per request with the model's own compute taken out, as a GPU host pays it.

On a GPU the forward pass costs the host little; what bounds one process there is the Python work
around it (HTTP, multipart, preprocessing, the digit check, the response). This serves a CapsNet
with 16 first-layer channels and 4 primary capsule types (about 1/60 of the convolutions' work)
on the CPU, carrying the shipped card's input convention and digit check so that every request
does the service's usual work, and puts it under `bench/load_test.py`'s load. Its requests/s and
CPU ms a request approximate the ceiling of one process on a GPU host with this CPU.

    python bench/host_cost.py [--duration 8] [--connections 1,32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import load_test  # bench/load_test.py, beside this script
import torch

from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import read_model_card, save_weights
from model.evaluate import DEFAULT_WEIGHTS
from model.nondigit import CARD_KEY

SMALL = CapsNetConfig(conv1_channels=16, primary_types=4)


def small_weights(directory: Path) -> Path:
    """Random weights of the small model, with the shipped card's input and digit check."""
    torch.manual_seed(0)
    card = read_model_card(load_test.REPO / DEFAULT_WEIGHTS)
    path = directory / "small.safetensors"
    save_weights(CapsNet(SMALL), path, {"input": card.get("input"), CARD_KEY: card.get(CARD_KEY)})
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", default="8", help="seconds per point (default: 8)")
    p.add_argument("--connections", default="1,32", help="(default: 1,32)")
    p.add_argument("--rounds", default="1", help="(default: 1)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = small_weights(Path(tmp))
        load_test.main(
            ["--servers", "service", "--weights", str(weights), "--duration", args.duration, "--warmup", "2"]
            + ["--connections", args.connections, "--rounds", args.rounds]
        )


if __name__ == "__main__":
    main()
