"""The model's tensors as inference servers see them: names, datatypes and per-item shapes.

One source for every place that describes the model to another program: the exported ONNX
graph's inputs and outputs, the Triton `config.pbtxt`, and the Open Inference Protocol
metadata the service answers with. Shapes follow the model's config; the batch dimension is
left out here and added by each consumer in its own way (-1, or Triton's `max_batch_size`).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.capsnet import CapsNetConfig


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Open Inference Protocol datatype: FP32, INT64, ...
    shape: tuple[int, ...]  # one item's shape, without the batch dimension


def image_input(cfg: CapsNetConfig) -> TensorSpec:
    """Preprocessed images: pixel / 255, white ink on black, MNIST layout."""
    return TensorSpec("images", "FP32", (cfg.in_channels, cfg.image_size, cfg.image_size))


def outputs(cfg: CapsNetConfig) -> tuple[TensorSpec, ...]:
    """Capsule lengths, the longest one's digit, the poses, and the decoder's redrawing of it."""
    return (
        TensorSpec("scores", "FP32", (cfg.num_classes,)),
        TensorSpec("digit", "INT64", ()),
        TensorSpec("poses", "FP32", (cfg.num_classes, cfg.digit_dim)),
        TensorSpec("reconstruction", "FP32", (cfg.in_channels, cfg.image_size, cfg.image_size)),
    )


def digit_check_outputs() -> tuple[TensorSpec, ...]:
    """What the service adds to the graph's outputs from the model card's digit check
    (`model.nondigit`): the winning capsule's reconstruction error and the verdict."""
    return (TensorSpec("reconstruction_error", "FP32", ()), TensorSpec("is_digit", "BOOL", ()))
