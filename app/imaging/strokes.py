"""From ink to the digit's strokes: ruled lines out, specks out, the digit picked and cropped.

Ruled or grid lines are found as long straight segments (probabilistic Hough transform) that
cross most of the picture, erased, and the strokes they crossed bridged again. The digit is the
connected component with the most ink, weighted towards the middle of the picture where people
aim (in a photo, what touches the frame is not a candidate), together with the pieces near it
(a 5's hat, a broken stroke); specks elsewhere are left. Last, thin pen lines are thickened
towards MNIST's stroke width, so that a ballpoint digit on a large photo and a marker digit
both look like what the model was trained on.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from app.errors import NoDigitFound
from app.imaging.ink import MIN_PHOTO, Ink

LINE_SPAN = 0.75  # a ruled line crosses at least this much of the picture
LINE_WIDTH = 0.012  # and is thinner than this (of the picture's side), unlike a close-up's stroke
MIN_LINE_WIDTH = 3.5  # px: a blurred rule is this wide even on a small picture
LINE_TILT = np.deg2rad(15)  # and runs within this of horizontal or vertical
NEAR = 0.3  # pieces within this much of the digit's size from its box belong to it
MIN_PIECE = 0.03  # of the main stroke's area: smaller pieces near it are specks
CENTRE_SIGMA = 0.35  # of the picture's size: how strongly components near the middle are preferred
MNIST_STROKE = 2.8  # px at the 20 px box: MNIST's mean stroke width (bench/photo_accuracy.py --strokes)
THIN = 0.65  # strokes under this fraction of MNIST's width are thickened to it


def erase_lines(ink: Ink) -> Ink:
    """Ink without the long thin straight lines across the picture; strokes that crossed them bridged."""
    h, w = ink.weak.shape
    span = LINE_SPAN * min(h, w)
    weak = ink.weak.astype(np.uint8)
    width = max(3, int(LINE_WIDTH * min(h, w)) | 1)
    thin = weak & ~cv2.morphologyEx(weak, cv2.MORPH_OPEN, np.ones((width, width), np.uint8))
    segments = cv2.HoughLinesP(thin, 1, np.pi / 360, int(span / 2), minLineLength=span, maxLineGap=span / 4)
    level = ink.level
    for x0, y0, x1, y1 in [] if segments is None else segments.reshape(-1, 4).tolist():
        angle = np.arctan2(abs(y1 - y0), abs(x1 - x0))
        horizontal = angle < LINE_TILT and abs(x1 - x0) >= LINE_SPAN * w
        vertical = angle > np.pi / 2 - LINE_TILT and abs(y1 - y0) >= LINE_SPAN * h
        line = cv2.line(np.zeros((h, w), np.uint8), (x0, y0), (x1, y1), 1, 5).astype(bool) & ink.weak
        thin = line.sum() / np.hypot(x1 - x0, y1 - y0) < max(MIN_LINE_WIDTH, LINE_WIDTH * min(h, w))
        if (horizontal or vertical) and thin:
            level = bridge(np.where(line, 0.0, level).astype(np.float32), line, horizontal)
    return replace(ink, level=level)


def bridge(level: np.ndarray, gap: np.ndarray, horizontal: bool) -> np.ndarray:
    """Refills the erased line's pixels only where ink continues on both sides of it."""
    kernel = np.ones((9, 1) if horizontal else (1, 9), np.uint8)
    closed = cv2.morphologyEx(level, cv2.MORPH_CLOSE, kernel)
    return np.where(gap, closed, level).astype(np.float32)


def select_digit(ink: Ink) -> np.ndarray:
    """The digit's ink, cropped to its strokes and with everything else in the box set to 0.

    In a photo, what touches the frame is the page's edge, a shadow or the table, not the digit
    aimed at. Where nothing else stands out, the digit may be joined to the frame by a thread (what
    is left of an erased grid line, a hair): the threads are cut and the digit looked for again.
    """
    photo = not ink.flat and min(ink.weak.shape) >= MIN_PHOTO
    try:
        return pick_digit(ink, ink.weak, photo)
    except NoDigitFound:
        if not photo:
            raise
        return pick_digit(ink, cut_from_frame(ink.weak), photo)


def pick_digit(ink: Ink, weak: np.ndarray, photo: bool) -> np.ndarray:
    """The component of `weak` with the most ink, weighted towards the middle, and the pieces near it."""
    h, w = weak.shape
    count, labels, stats, centres = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    has_core = np.bincount(labels[ink.strong], minlength=count) > 0
    if photo:
        has_core &= ~touches_frame(stats, h, w)
    mass = np.bincount(labels.ravel(), weights=ink.level.ravel(), minlength=count)
    offset = ((centres[:, 0] - w / 2) / w) ** 2 + ((centres[:, 1] - h / 2) / h) ** 2
    score = mass * np.exp(-offset / (2 * CENTRE_SIGMA**2)) * has_core
    score[0] = 0  # the background
    main = int(score.argmax())
    if score[main] <= 0 or max(stats[main, 2], stats[main, 3]) < max(3, 0.03 * max(h, w)):
        raise NoDigitFound("no digit found: nothing but specks stands out from the background")
    chosen = pieces_near(stats, has_core, main)
    top, left = stats[chosen, 1].min(), stats[chosen, 0].min()
    bottom = (stats[chosen, 1] + stats[chosen, 3]).max()
    right = (stats[chosen, 0] + stats[chosen, 2]).max()
    keep = np.isin(labels[top:bottom, left:right], chosen)
    return np.where(keep, ink.level[top:bottom, left:right], 0.0).astype(np.float32)


def cut_from_frame(weak: np.ndarray) -> np.ndarray:
    """The ink, with what touches the frame opened (threads under 3 px cut), the rest as it is."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    touching = touches_frame(stats, *weak.shape)
    touching[0] = False
    if not touching.any():
        return weak
    joined = touching[labels]
    opened = cv2.morphologyEx(joined.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return (weak & ~joined) | opened.astype(bool)


def touches_frame(stats: np.ndarray, h: int, w: int) -> np.ndarray:
    x, y, bw, bh = (stats[:, i] for i in range(4))
    return (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)


def pieces_near(stats: np.ndarray, has_core: np.ndarray, main: int) -> np.ndarray:
    """The main component and those that reach into its box grown by `NEAR` of its size (twice)."""
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    candidates = has_core & (area >= MIN_PIECE * area[main])
    candidates[0] = False
    left, top, right, bottom = x[main], y[main], x[main] + bw[main], y[main] + bh[main]
    chosen = np.zeros_like(candidates)
    chosen[main] = True
    for _ in range(2):
        margin = NEAR * max(right - left, bottom - top)
        near = (
            (x < right + margin) & (x + bw > left - margin) & (y < bottom + margin) & (y + bh > top - margin)
        )
        chosen |= candidates & near
        left, top = x[chosen].min(), y[chosen].min()
        right, bottom = (x + bw)[chosen].max(), (y + bh)[chosen].max()
    return np.flatnonzero(chosen)


def stroke_width(mask: np.ndarray) -> float:
    """Twice the area over the perimeter: a stroke's width, whatever its length (px)."""
    area = int(mask.sum())
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
    boundary = area - int(inner.sum())
    return 2.0 * area / max(boundary, 1)


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
