"""Saving and loading: shipped weights as safetensors with a model card, resume checkpoints.

The shipped format is one `.safetensors` file whose metadata carries the format version, the
`CapsNetConfig`, the class labels and the input convention, so the model is rebuilt from that
file alone; a JSON model card with the same fields plus the training and evaluation summary
sits beside it (`<name>.json`) and records the sha256 of the weights it describes, so a card left
beside other weights is detected. Both files are written atomically. Nothing here unpickles:
resume checkpoints go through `torch.load(weights_only=True)`, which only rebuilds tensors and
plain containers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from model.capsnet import CapsNet, CapsNetConfig
from model.data import sha256_file

FORMAT_NAME = "capsnet-serve"
FORMAT_VERSION = 1
LABELS = [str(digit) for digit in range(10)]
INPUT_CONVENTION = {
    "shape": [1, 28, 28],
    "dtype": "float32",
    "range": [0.0, 1.0],
    "scale": "pixel / 255",
    "polarity": "white ink on black background",
    "layout": "MNIST: digit scaled into a 20x20 box, centred by centre of mass in 28x28",
    "digit_box": 20,  # px: the digit's longest side within the image, as in MNIST
}


class CheckpointError(RuntimeError):
    """Weights that cannot be loaded; the message names the file and the problem."""


def model_card_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def describe(model: CapsNet) -> dict[str, Any]:
    """The self-description stored with the weights."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "labels": LABELS,
        "input": INPUT_CONVENTION,
    }


def save_weights(model: CapsNet, path: Path, summary: dict[str, Any] | None = None) -> None:
    """Writes `path` (safetensors, fp32) and its model card; `summary` goes into the card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = describe(model)
    metadata = {key: json.dumps(value) for key, value in header.items()}
    state = {name: t.detach().float().cpu().contiguous() for name, t in model.state_dict().items()}
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(state, tmp, metadata=metadata)
    tmp.chmod(0o644)  # safetensors writes 0600; a service user must be able to read shipped weights
    sha256 = sha256_file(tmp)
    os.replace(tmp, path)
    write_model_card(path, {**header, "weights_sha256": sha256, **(summary or {})})


def write_model_card(weights_path: Path, card: dict[str, Any]) -> None:
    """Replaces the card atomically: a reader sees the old card or the new one, never half."""
    card_path = model_card_path(weights_path)
    tmp = card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, card_path)


def card_mismatch(weights_path: Path, card: dict[str, Any], sha256: str) -> str | None:
    """Why the card cannot be trusted to describe the weights with this sha256, or None."""
    recorded = card.get("weights_sha256")
    if not model_card_path(weights_path).exists():
        return f"{weights_path} has no model card ({model_card_path(weights_path).name}) beside it"
    if recorded is None:
        return f"the model card of {weights_path} records no weights_sha256, so it cannot be checked"
    if recorded != sha256:
        return (
            f"the model card of {weights_path} describes other weights (sha256 {recorded[:12]}..., "
            f"the file's is {sha256[:12]}...): its accuracy and recipe are not these weights'"
        )
    return None


def read_model_card(weights_path: Path) -> dict[str, Any]:
    """The JSON card beside the weights, or the header stored in the weights if there is none."""
    card_path = model_card_path(weights_path)
    if card_path.exists():
        return json.loads(card_path.read_text())
    return read_header(weights_path)


def read_header(path: Path) -> dict[str, Any]:
    """Validates and decodes the safetensors metadata."""
    if path.is_dir():
        found = ", ".join(sorted(p.name for p in path.glob("*.safetensors"))) or "no .safetensors file"
        raise CheckpointError(f"{path} is a directory, not a weights file: name the file ({found} in it)")
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    if "format_version" not in metadata or "config" not in metadata:
        raise CheckpointError(f"{path} has no {FORMAT_NAME} metadata (format_version, config)")
    try:
        header = {key: json.loads(value) for key, value in metadata.items()}
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata is not valid JSON: {e}") from e
    if header["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unknown format version {header['format_version']!r} "
            f"(this code reads version {FORMAT_VERSION})"
        )
    return header


def load_weights(path: Path, device: str | torch.device = "cpu") -> CapsNet:
    """Rebuilds the model from the file's own config and loads it strictly onto `device`."""
    path = Path(path)
    header = read_header(path)
    try:
        config = CapsNetConfig.from_dict(header["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config: {e}") from e
    try:
        state = load_file(path, device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is corrupted: {e}") from e
    model = CapsNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the saved config: {e}") from e
    return model.to(device).eval()


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically writes a resume checkpoint (tensors and plain containers only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
