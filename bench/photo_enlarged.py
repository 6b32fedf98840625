"""A third set of photos of MNIST test digits: the digit's own grey levels enlarged as the ink.

The other two generators redraw each digit's centre line with a pen (`photo_digits`,
`photo_scenes`), so their strokes are as thin as a ballpoint's. People also photograph digits
drawn with a marker or a brush, or printed large, and other test sets are made the simple way:
the 28x28 digit enlarged smoothly and laid on paper as it is. Its strokes are then as broad,
relative to the digit, as MNIST's (about a seventh of its height), and the gaps inside its loops
no wider than the strokes. Each photo is a page 300-900 px wide with the digit anywhere on it,
35-80% of the shorter side tall, then one degradation (or all of them): uneven light and
vignette, a shadow with a straight or rounded edge, ruled lines, blue ink, rotation up to 10
degrees, defocus; always sensor noise and JPEG quality 60-90. Fixed seeds, images made in memory.

    python bench/photo_accuracy.py --only enlarged:     # accuracy on these per condition
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

Rng = np.random.Generator
BLACK_INK = np.array([0.1, 0.1, 0.12], np.float32)
BLUE_INK = np.array([0.12, 0.18, 0.55], np.float32)
RULE_COLOURS = (np.array([0.55, 0.7, 0.9], np.float32), np.array([0.6, 0.6, 0.6], np.float32))


def page_with_digit(digit: np.ndarray, rng: Rng, ink: np.ndarray, ruled: bool) -> np.ndarray:
    """(H, W, 3) float32: the digit enlarged on a page, its grey level the ink's coverage."""
    width = int(rng.integers(300, 901))
    height = int(width * rng.uniform(0.75, 1.35))
    paper = rng.uniform(0.82, 0.97) + rng.uniform(-0.03, 0.03, 3)
    page = np.ones((height, width, 3), np.float32) * paper.astype(np.float32)
    size = int(min(width, height) * rng.uniform(0.35, 0.8))
    if ruled:
        spacing = int(rng.integers(size // 4, size // 2))
        colour = RULE_COLOURS[0] if rng.random() < 0.7 else RULE_COLOURS[1]
        thickness = int(rng.integers(1, 3))
        for y in range(int(rng.integers(0, spacing)), height, spacing):
            page[y : y + thickness] = page[y : y + thickness] * 0.3 + colour * 0.7
    coverage = cv2.resize(digit.astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_CUBIC)
    coverage = np.clip(coverage, 0, 1)[..., None]
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    spot = page[top : top + size, left : left + size]
    page[top : top + size, left : left + size] = spot * (1 - coverage) + ink * coverage
    return page


def uneven_light(page: np.ndarray, rng: Rng) -> np.ndarray:
    """A linear gradient from a random side (down to 55-85%) and a vignette."""
    height, width = page.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    darkest = rng.uniform(0.55, 0.85)
    light = darkest + (1 - darkest) * ramp
    radius = np.hypot((xs - width / 2) / width, (ys - height / 2) / height)
    light *= 1 - rng.uniform(0.1, 0.35) * radius / radius.max()
    return page * light[..., None]


def shadow(page: np.ndarray, rng: Rng) -> np.ndarray:
    """25-50% darker beyond a straight edge across the page, or under a rounded shape (a hand)."""
    height, width = page.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle, through = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.75)
        shade = np.cos(angle) * (xs / width - through) + np.sin(angle) * (ys / height - through) > 0
    else:
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
        shade = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 < 1
    edge = cv2.GaussianBlur(shade.astype(np.float32), (0, 0), rng.uniform(3, 20))
    return page * (1 - rng.uniform(0.25, 0.5) * edge)[..., None]


def rotation(page: np.ndarray, rng: Rng) -> np.ndarray:
    height, width = page.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-10, 10), 1.0)
    return cv2.warpAffine(page, turn, (width, height), borderMode=cv2.BORDER_REFLECT)


def defocus(page: np.ndarray, rng: Rng) -> np.ndarray:
    return cv2.GaussianBlur(page, (0, 0), rng.uniform(0.6, 1.8))


def photo(page: np.ndarray, rng: Rng) -> bytes:
    """Sensor noise and JPEG quality 60-90."""
    noisy = page + rng.normal(0, rng.uniform(0.01, 0.04), page.shape).astype(np.float32)
    out = io.BytesIO()
    Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(
        out, "JPEG", quality=int(rng.integers(60, 91))
    )
    return out.getvalue()


Step = Callable[[np.ndarray, Rng], np.ndarray]
LIGHT_AND_CAMERA: dict[str, Step] = {
    "uneven light": uneven_light,
    "shadow": shadow,
    "rotation": rotation,
    "blur": defocus,
}
CONDITIONS = [
    "plain paper",
    "uneven light",
    "shadow",
    "ruled lines",
    "blue ink",
    "rotation",
    "blur",
    "all at once",
]


def render(condition: str, digit: np.ndarray, seed: int) -> bytes:
    """The JPEG bytes of one photo of `digit` (28x28 uint8 MNIST), the same for the same seed."""
    rng = np.random.default_rng(seed)
    everything = condition == "all at once"
    blue = condition == "blue ink" or (everything and rng.random() < 0.5)
    ruled = condition == "ruled lines" or (everything and rng.random() < 0.5)
    page = page_with_digit(digit, rng, BLUE_INK if blue else BLACK_INK, ruled)
    for name, step in LIGHT_AND_CAMERA.items():
        if everything or condition == name:
            page = step(page, rng)
    return photo(page, rng)
