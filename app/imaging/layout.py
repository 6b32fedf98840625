"""The loaded model's layout (its field and digit box), and whether a picture is in it already.

MNIST's layout (`model/mnist_style.py`): the digit's longest side scaled to the box, its centre
of mass at the field's centre. Both sizes come from the loaded model: the field from its
config's `image_size`, the box from its card's `input.digit_box`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.checkpoint import read_model_card
from model.mnist_style import stroke_width

MNIST_BOX_FRACTION = 20 / 28  # MNIST's box within its field, for a card that does not state its box
FULL_INK = 0.9  # MNIST's ink at full strength: 99% of its digits have a tenth of their ink above 0.96
FULL_INK_SHARE = 0.1


@dataclass(frozen=True)
class Layout:
    size: int  # the model's input is size x size
    box: int  # the longest side of the digit within it

    @classmethod
    def of_model(cls, info: dict[str, Any]) -> Layout:
        """From what the service reports about its model (`GET /v1/model`: config and input)."""
        size = int(info["config"]["image_size"])
        box = (info.get("input") or {}).get("digit_box")
        return cls(size, int(box) if box is not None else round(size * MNIST_BOX_FRACTION))

    @classmethod
    def of_weights(cls, config: dict[str, Any], weights: Path) -> Layout:
        """From a loaded model's config and the card beside its weights."""
        return cls.of_model({"config": config, "input": read_model_card(weights).get("input")})


def in_layout(grey: np.ndarray, layout: Layout, min_stroke: float) -> bool:
    """Whether `grey` is already a digit in MNIST's layout, so the pipeline would only resample it.

    That is: the model's size, white ink on exact black, the ink's bounding box `layout.box` on its
    longest side, its centre of mass within half a pixel of the centre (where `centre_by_mass` puts
    it), a tenth of its ink at full strength or more and strokes at least `min_stroke` wide. 9,982
    of MNIST's 10,000 test digits pass; a digit that passes goes to the model untouched, in a
    fraction of the time. The cheapest tests come first: most pictures fail the first.
    """
    if grey.shape != (layout.size, layout.size):
        return False
    mask = grey > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 != layout.box:
        return False
    mass = float(grey.sum())
    centre = np.arange(layout.size) - layout.size / 2
    if max(abs(grey.sum(axis=1) @ centre), abs(grey.sum(axis=0) @ centre)) > 0.5 * mass:
        return False
    strong = int((grey >= FULL_INK).sum())
    return strong >= FULL_INK_SHARE * int(mask.sum()) and stroke_width(mask) >= min_stroke
