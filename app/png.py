"""Model tensors -> PNG bytes: single digits, side-by-side pairs and tweak grids.

Images are upscaled with nearest-neighbour so that each model pixel stays a crisp square.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(pixels: np.ndarray, scale: int = 1) -> bytes:
    """(H, W) floats in [0, 1] -> greyscale PNG of (H * scale, W * scale) pixels."""
    h, w = pixels.shape  # the data plane has checked the output size against its limit
    grey = np.rint(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(grey)
    if scale > 1:
        image = image.resize((w * scale, h * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # speed over a few bytes
    return out.getvalue()


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two (28, 28) images -> (28, 56), left first, no gutter."""
    return np.concatenate([left, right], axis=1)


def tile(grid: np.ndarray) -> np.ndarray:
    """(rows, cols, h, w) -> (rows * h, cols * w): one row per pose dimension, no gutters."""
    rows, cols, h, w = grid.shape
    return grid.transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
