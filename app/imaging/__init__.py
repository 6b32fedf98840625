"""Uploaded bytes -> a checked, decoded, MNIST-style input in [0, 1], white ink on black.

What users send (phone photos of ink on paper under uneven light, whiteboards, chalkboards,
scans, canvas exports with a transparent background, MNIST digits themselves) goes through one
pipeline: decode small (`decode`), find the ink against its local background (`ink`), drop
ruled lines and specks and pick the digit (`strokes`), then MNIST's own look: strokes at its
strength and width, its layout (`model.mnist_style`, which training draws its non-digits with
too). An image already in MNIST's layout (`layout`) comes out unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from app.errors import InvalidImage, NoDigitFound
from app.imaging.decode import decode, to_colour, to_grey
from app.imaging.ink import MIN_PHOTO, find_ink
from app.imaging.layout import Layout, in_layout
from app.imaging.strokes import erase_lines, select_digit
from model.mnist_style import MIN_CONTRAST, MNIST_STROKE, THIN, in_mnist_style

Preprocess = Literal["auto", "none"]
__all__ = ["Layout", "Preprocess", "prepare"]


def prepare(data: bytes, preprocess: Preprocess, max_pixels: int, layout: Layout) -> np.ndarray:
    """The model's input (size, size) float32 in [0, 1] for one uploaded file."""
    image = decode(data, max_pixels)
    grey = to_grey(image)
    return mnist_style(grey, layout, to_colour(image)) if preprocess == "auto" else as_is(grey, layout)


def as_is(grey: np.ndarray, layout: Layout) -> np.ndarray:
    """`preprocess=none`: an image of the model's size fed unchanged (values / 255, no inversion)."""
    if grey.shape != (layout.size, layout.size):
        h, w = grey.shape
        raise InvalidImage(f"preprocess=none needs a {layout.size}x{layout.size} image, got {w}x{h}")
    if grey.max() < MIN_CONTRAST:
        raise NoDigitFound("the image is blank")
    return grey.astype(np.float32)


def mnist_style(grey: np.ndarray, layout: Layout, colour: np.ndarray | None = None) -> np.ndarray:
    """Ink found and flattened (in colour where the picture has it), lines and specks dropped, the
    digit cropped, its strokes at MNIST's strength and width, MNIST's layout; a digit already in
    that layout (an MNIST digit, say, or one inverted) as it is."""
    if grey.shape == (layout.size, layout.size):
        for candidate in (grey, 1.0 - grey):
            if in_layout(candidate, layout, THIN * MNIST_STROKE):
                return candidate.astype(np.float32)
    digit = select_digit(erase_lines(find_ink(grey, colour)))
    # a small picture's broad strokes are its resolution, no marker
    return in_mnist_style(digit, layout.box, layout.size, thin_broad=min(grey.shape) >= MIN_PHOTO)
