"""Averaging CLI: the parameter-wise mean of weights fine-tuned from one another.

Weights fine-tuned from a common start lie in one basin of the loss, and their mean is a model
of its own that often keeps more of what each gained than either alone ("model soups", Wortsman
et al. 2022; WiSE-FT, Wortsman et al. 2022, which interpolates a fine-tuned model with the one
it started from). The shipped weights are such a mean (docs/training-log.md). The new card names
every source by file name and hash, with its training and evaluation record; the sources must
share one config. Run `capsnet-calibrate` and `capsnet-evaluate --update-card` on the result.

    capsnet-average runs/a/last.safetensors runs/b/last.safetensors --out runs/soup.safetensors
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from model.capsnet import CapsNet
from model.checkpoint import CheckpointError, load_weights, model_card_path, read_model_card, save_weights
from model.data import sha256_file


def averaged(paths: list[Path]) -> CapsNet:
    """The mean of these weights, parameter by parameter; refused when their configs differ."""
    models = [load_weights(path) for path in paths]
    if differing := [
        path for path, model in zip(paths, models, strict=True) if model.config != models[0].config
    ]:
        raise CheckpointError(f"{differing[0]} has another config than {paths[0]}: only like weights average")
    states = [model.state_dict() for model in models]
    mean = {name: torch.stack([state[name] for state in states]).mean(dim=0) for name in states[0]}
    models[0].load_state_dict(mean)
    return models[0]


def provenance(paths: list[Path]) -> dict[str, Any]:
    """The card's training record: each source's hash and its own training and evaluation."""
    sources = []
    for path in paths:
        card = read_model_card(path)
        sources.append(
            {
                "weights": path.name,
                "sha256": sha256_file(path),
                "training": card.get("training"),
                "evaluation": card.get("evaluation"),
            }
        )
    return {
        "training": {
            "averaged_from": sources,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
        }
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, nargs="+", help="two or more safetensors files with their cards")
    p.add_argument("--out", type=Path, required=True, help="where to write the mean and its card")
    args = p.parse_args(argv)
    if len(args.weights) < 2:
        p.error("give two or more weights to average")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        save_weights(averaged(args.weights), args.out, provenance(args.weights))
    except (CheckpointError, FileNotFoundError) as e:
        sys.exit(f"capsnet-average: {e}")
    print(f"wrote the mean of {len(args.weights)} weights to {args.out} (card: {model_card_path(args.out)})")


if __name__ == "__main__":
    main()
