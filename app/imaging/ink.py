"""Ink versus paper under any light: polarity, a flattened background, thresholds that adapt.

The paper's brightness is estimated locally by a grey-level closing (an opening for light ink
on a dark board): a window wider than any pen stroke removes the strokes and keeps the paper,
and since closing leaves every monotone change of brightness as it is, gradients, vignettes and
the edge of a shadow stay in the background estimate instead of becoming ink. Ink is then how
much darker than its own paper each pixel is, relative to that paper, so ink in shadow counts
as much as ink in the light. What is ink is decided by hysteresis: Otsu's threshold over what
stands out of the noise finds the strokes, and the faint pixels joined to them come along.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.errors import NoDigitFound

MIN_CONTRAST = 0.1  # the strongest ink must differ from its background by this much (of the paper)
WINDOW_FRACTION = 0.25  # the background window, of the image's shorter side: wider than strokes
NOISE_SIGMAS = 4.0  # weak ink stands this many noise deviations above the paper
MIN_FLOOR = 0.02


@dataclass(frozen=True)
class Ink:
    level: np.ndarray  # (H, W) float32: light ink on a zero background, 1 = as dark as ink gets
    floor: float  # above it a pixel stands out of the paper's noise
    cut: float  # above it a pixel is a stroke's core (Otsu's threshold)

    @property
    def weak(self) -> np.ndarray:
        return self.level > self.floor

    @property
    def strong(self) -> np.ndarray:
        return self.level > self.cut


def find_ink(grey: np.ndarray) -> Ink:
    level = flatten(grey, dark_on_light(grey))
    if float(np.percentile(level, 99.9)) < MIN_CONTRAST and level.max() < 2 * MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image has no ink that stands out from its background")
    floor = noise_floor(level)
    return Ink(level, floor, max(otsu(level[level > floor]), floor))


def dark_on_light(grey: np.ndarray) -> bool:
    """Ink is the sparse tail of the histogram: the side that reaches further from the median."""
    low, median, high = np.percentile(grey, [0.2, 50, 99.8])
    return median - low > high - median


def flatten(grey: np.ndarray, dark_ink: bool) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 0 on the paper (or board) wherever it is, rising with the ink."""
    side = min(grey.shape)
    k = max(3, int(side * WINDOW_FRACTION) | 1)
    window = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    smooth = cv2.medianBlur(grey, 3) if side >= 64 else grey  # noise must not lift the envelope
    if dark_ink:
        paper = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, window)
        level = 1.0 - grey / np.maximum(paper, 1e-3)
    else:
        board = cv2.morphologyEx(smooth, cv2.MORPH_OPEN, window)
        level = (grey - board) / np.maximum(1.0 - board, 1e-3)
    return np.clip(level, 0.0, 1.0).astype(np.float32)


def noise_floor(level: np.ndarray) -> float:
    """The paper's level plus a few robust deviations of its noise (most pixels are paper)."""
    median = float(np.median(level))
    spread = 1.4826 * float(np.median(np.abs(level - median)))
    return max(median + NOISE_SIGMAS * spread, MIN_FLOOR)


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold over `values` in [0, 1] (0 when there are too few to split)."""
    if values.size < 8:
        return 0.0
    as_bytes = np.round(values * 255).astype(np.uint8).reshape(-1, 1)
    threshold, _ = cv2.threshold(as_bytes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(threshold) / 255.0
