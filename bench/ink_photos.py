"""An MNIST digit as a phone photo of ink on paper: what the default preprocessing must undo.

The digit becomes dark ink (black or blue) on off-white paper, at a random size and position in
a larger colour frame, turned a little, lit unevenly, slightly out of focus and with sensor
noise; the caller saves it as a JPEG.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

INKS = ((20, 20, 25), (25, 35, 110), (40, 40, 40))  # black ballpoint, blue ballpoint, pencil-grey


def ink_photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """(28, 28) uint8 white-on-black digit -> an RGB photo of it written on paper."""
    frame = int(rng.integers(160, 320))
    size = int(frame * rng.uniform(0.35, 0.6))
    ink = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    ink = ink.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BICUBIC)
    coverage = np.zeros((frame, frame), np.float32)
    top, left = (int(v) for v in rng.integers(frame // 10, frame - size - frame // 10 + 1, 2))
    coverage[top : top + size, left : left + size] = np.asarray(ink, np.float32) / 255.0
    paper = np.array([235, 232, 222], np.float32) + rng.uniform(-15, 15, 3)
    yy, xx = np.mgrid[0:frame, 0:frame] / frame
    light = 1.0 - 0.08 * (rng.uniform(-1, 1) * (xx - 0.5) + rng.uniform(-1, 1) * (yy - 0.5))
    colour = np.array(INKS[rng.integers(len(INKS))], np.float32)
    pixels = (paper * (1 - coverage[..., None]) + colour * coverage[..., None]) * light[..., None]
    pixels += rng.normal(0, 4, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
