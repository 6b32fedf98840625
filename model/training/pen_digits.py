"""Training digits redrawn with a pen, as people draw them on a drawing pad or with a felt pen.

MNIST's digits were written with pens of many widths and scanned: their strokes swell and fade.
A digit drawn on the demo page's pad, or with a marker, has one even stroke from end to end, and
after the service's preprocessing it still does. A network that has seen only MNIST finds such
a digit a little unlike the ones it knows, and more so once it has also learnt to refuse letters
and shapes drawn with even strokes (`model/training/non_digits.py`): the digit check then flags
more drawings of real digits. Each training digit chosen here is reduced to its centre line and
traced again with a round pen of a random width, then brought to MNIST's look as the service
brings an upload (`model.mnist_style`), keeping its label.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

from model.data import Split
from model.mnist_style import in_mnist_style

SCALE = 8  # the centre line is found this many times MNIST's resolution, so that it runs smoothly
INK = 0.4  # of full strength: the pixels a stroke is made of
PEN = (1.0, 3.5)  # px at MNIST's scale: the range of pen widths, from a fine liner to a marker


def traced_with_a_pen(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """`digit` (uint8, white on black) traced along its centre line with a round pen of a random
    width, `SCALE` times as large: strokes of 1.0 on 0.0, or None when it has no ink."""
    height, width = digit.shape
    size = (width * SCALE, height * SCALE)
    large = cv2.resize(digit.astype(np.float32) / 255, size, interpolation=cv2.INTER_LINEAR)
    centre_line = skeletonize(large > INK)
    if not centre_line.any():
        return None
    diameter = max(1, round(rng.uniform(*PEN) * SCALE)) | 1
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
    return cv2.dilate(centre_line.astype(np.uint8), pen).astype(np.float32)


def pen_digit_split(digits: Split, count: int, seed: int, image_size: int, box: int) -> Split:
    """`count` of `digits` (drawn at random, the same for the same seed) traced with a pen and
    laid out in MNIST's look, each with its digit's label."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, image_size, image_size), dtype=np.uint8)
    labels = np.zeros(count, dtype=np.int64)
    drawn = 0
    while drawn < count:
        index = int(rng.integers(len(digits)))
        strokes = traced_with_a_pen(digits.images[index], rng)
        if strokes is not None:
            images[drawn] = np.round(255 * in_mnist_style(strokes, box, image_size))
            labels[drawn] = digits.labels[index]
            drawn += 1
    return Split(images, labels)
