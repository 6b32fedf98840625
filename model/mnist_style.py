"""MNIST's look: strokes at MNIST's strength and width, the longest side in the box, centred by mass.

MNIST was made this way (LeCun et al.): each digit's bounding box scaled so that its longest
side is 20 px, keeping the aspect ratio, and placed in a 28x28 field with its centre of mass at
the centre; its strokes are about 2.8 px wide there and at full strength. The service brings
every uploaded digit to this look (`app/imaging`), and training draws its images with no digit in
it too (`model/training/non_digits.py`), so that what the network learns to refuse looks as
what it is later asked about. Sizes come from the caller: the field is the model config's
`image_size`, the box its card's `input.digit_box`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MIN_CONTRAST = 0.1  # the strongest ink must differ from its background by this much (of the paper)
MNIST_STROKE = 2.8  # px at the 20 px box: MNIST's mean stroke width (bench/photo_accuracy.py --strokes)
THIN = 0.65  # strokes under this fraction of MNIST's width are thickened to it
FADED = 0.4  # of the digit's full strength: ink with nothing this strong near it is no faded stroke
MNIST_CORE = 2.3  # px at the 20 px box: its mean stroke width at half strength (the same command)
BROAD = 3.8  # px at the box, at half strength: 99% of MNIST's digits are narrower; broader is thinned
AREA = 6.0  # px at the box: ink this broad leaves no room for a digit's loops: a filled area, left as it is


def in_mnist_style(ink: np.ndarray, box: int, size: int, thin_broad: bool = True) -> np.ndarray:
    """`ink` (any size, float in [0, 1], some of it above 0) as MNIST would show it: (size, size)
    float32. `thin_broad=False` leaves broad strokes as they are: in a picture of a few dozen
    pixels (an icon, a UCI digit) broad strokes are its resolution, not a felt marker."""
    ink = trim(ink)  # the box's scale is the ink's, not its picture's
    strokes = ink > 0
    digit = thicken(at_full_strength(ink, strokes), box, strokes)
    if thin_broad:
        digit = thin(digit, box)
    return centre_by_mass(fit_box(trim(digit), box), size)


def stroke_width(mask: np.ndarray) -> float:
    """Twice the area over the perimeter: a stroke's width, whatever its length (px). Ink cut off
    by the mask's edge has no perimeter there (the measure MNIST's widths were taken with, on
    digits clear of their frame), so ink filling its whole mask measures unbounded."""
    area = int(mask.sum())
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
    boundary = area - int(inner.sum())
    return 2.0 * area / max(boundary, 1)


def at_full_strength(digit: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """The digit's ink in [0, 1] with every stroke at full strength, as MNIST's are: a stroke
    faded under glare or pressed lightly in pencil reads as strongly as the rest of the digit.
    Each pixel is taken relative to the strongest ink within a stroke's width of it, capped at
    the digit's full strength (its 90th percentile); where even that is under `FADED` of full
    strength (noise, a smudge) it stays as faint as it is."""
    full = max(float(np.percentile(digit[strokes], 90)), MIN_CONTRAST)
    radius = max(1, round(stroke_width(strokes)))
    if radius < math.hypot(*digit.shape):
        pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        nearby = cv2.dilate(digit, pen)
    else:  # ink filling its crop (a filled rectangle): the pen reaches all of it from anywhere
        nearby = np.full_like(digit, digit.max())
    strength = np.where(nearby >= FADED * full, np.minimum(nearby, full), full)
    return np.clip(digit / strength, 0.0, 1.0)


def thicken(digit: np.ndarray, box: int, mask: np.ndarray) -> np.ndarray:
    """Dilates strokes thinner than MNIST's (measured at the box's scale) up to its width."""
    scale = box / max(digit.shape)
    width = stroke_width(mask) * scale
    if width >= THIN * MNIST_STROKE:
        return digit
    radius = round((MNIST_STROKE - width) / (2 * scale))
    if radius < 1:
        return digit
    padded = np.pad(digit, radius)
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(padded, pen)


def thin(digit: np.ndarray, box: int) -> np.ndarray:
    """Erodes strokes broader than 99% of MNIST's (a felt marker's, a whiteboard's) to its mean
    width, both measured at half strength at the box's scale, where anti-aliasing does not count.
    Ink broader than `AREA` is a filled shape rather than a stroke: eroded, a filled rectangle
    would only become a bar, a 1."""
    scale = box / max(digit.shape)
    width = stroke_width(digit >= 0.5) * scale
    radius = round((width - MNIST_CORE) / (2 * scale))
    if not BROAD < width <= AREA or radius < 1:
        return digit
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    thinned = cv2.erode(digit, pen, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return thinned if thinned.max() > 0 else digit


def trim(digit: np.ndarray) -> np.ndarray:
    """The bounding box of the ink."""
    rows, cols = np.nonzero(digit > 0)
    return digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def fit_box(crop: np.ndarray, box: int) -> np.ndarray:
    """Scales so that the longest side is `box` pixels, keeping the aspect ratio.

    Shrinking averages whole areas (no aliasing of thin strokes); enlarging uses Lanczos.
    """
    h, w = crop.shape
    ratio = box / max(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    method = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LANCZOS4
    return np.clip(cv2.resize(crop.astype(np.float32), size, interpolation=method), 0.0, 1.0)


def centre_by_mass(digit: np.ndarray, size: int) -> np.ndarray:
    """Pastes `digit` into size x size so that its centre of mass lands on the field's centre."""
    h, w = digit.shape
    mass = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(h)) / mass
    cx = (digit.sum(axis=0) @ np.arange(w)) / mass
    centre = size / 2  # where MNIST puts it: its mean centre of mass is (14.0, 14.0) of 28
    top = int(np.clip(round(centre - cy), 0, size - h))
    left = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return out
