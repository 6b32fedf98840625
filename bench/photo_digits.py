"""MNIST test digits rendered as photos: pen on paper, boards, and the ways photos go wrong.

Each digit's strokes are thinned to a skeleton and redrawn with a pen of a chosen width, so a
photo carries a ballpoint's line rather than MNIST's thick stroke, then laid on paper (or a
board) and put through what a phone camera does to it: uneven light, shadows, ruled lines,
rotation, defocus, sensor noise and JPEG. Every degradation can be applied alone or all at once.
Everything is drawn from one seed, so a set is the same on every run; nothing is written to disk
unless the caller saves it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

Rng = np.random.Generator
INKS = {  # RGB in [0, 1]
    "black": (0.08, 0.08, 0.1),
    "blue": (0.1, 0.2, 0.62),
    "red": (0.72, 0.1, 0.12),
    "pencil": (0.35, 0.35, 0.37),
}


@dataclass
class Page:
    """A photo being made: (H, W, 3) float32 RGB in [0, 1] and what its digit looks like."""

    pixels: np.ndarray
    digit_height: int


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Lantuejoul's morphological skeleton: the strokes' centre lines, whatever their width."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = np.zeros_like(mask)
    while mask.any():
        eroded = cv2.erode(mask, cross)
        out |= mask & ~cv2.dilate(eroded, cross)
        mask = eroded
    return out


def pen_strokes(digit: np.ndarray, height: int, pen_width: float) -> np.ndarray:
    """(h, w) float32 ink coverage: the digit `height` px tall, redrawn with a pen `pen_width` px wide.

    The centre lines are found at 4x MNIST's size, then each pair of neighbouring centre-line
    pixels is joined by an anti-aliased line of the pen's width at the photo's size.
    """
    big = cv2.resize(digit, (112, 112), interpolation=cv2.INTER_CUBIC)
    # A smooth outline gives a skeleton without spurs; a wider blur or a higher level would
    # drop an MNIST digit's faint, thin strokes (a 6's loop, an 8's lower half)
    big = cv2.GaussianBlur(big, (0, 0), 2)
    centre = skeleton((big > 80).astype(np.uint8) * 255) > 0
    ink = np.zeros((height, height), np.uint8)
    scale, shift = height / 112 * 16, 4  # cv2.line's sub-pixel coordinates: 4 fractional bits
    thickness = max(1, round(pen_width))
    for y, x in zip(*np.nonzero(centre), strict=True):
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
            if 0 <= y + dy < 112 and 0 <= x + dx < 112 and centre[y + dy, x + dx]:
                start = (round((x + 0.5) * scale), round((y + 0.5) * scale))
                end = (round((x + dx + 0.5) * scale), round((y + dy + 0.5) * scale))
                cv2.line(ink, start, end, 255, thickness, cv2.LINE_AA, shift)
    return ink.astype(np.float32) / 255.0


def blank_page(rng: Rng, width: int, height: int, tint: tuple[float, float, float]) -> np.ndarray:
    paper = np.empty((height, width, 3), np.float32)
    paper[:] = tint
    grain = cv2.GaussianBlur(rng.standard_normal((height, width), np.float32) * 0.015, (0, 0), 1.5)
    return np.clip(paper + grain[..., None], 0, 1)


def write(
    page: Page, ink: np.ndarray, colour: tuple[float, float, float], rng: Rng, opacity=0.95, across=0.5
) -> Page:
    """Lays ink coverage `ink` (smaller than the page) at a random spot near `across` of its width."""
    h, w = page.pixels.shape[:2]
    ih, iw = ink.shape
    top = int(np.clip(rng.normal((h - ih) / 2, h * 0.08), 0, h - ih))
    left = int(np.clip(rng.normal((w - iw) * across, w * 0.08), 0, w - iw))
    region = page.pixels[top : top + ih, left : left + iw]
    alpha = (ink * opacity)[..., None]
    region[:] = region * (1 - alpha) + np.asarray(colour, np.float32) * alpha
    return page


def photo_of_digit(
    digit: np.ndarray, rng: Rng, ink: str = "black", pen: tuple[float, float] = (0.03, 0.06)
) -> Page:
    """Pen on light paper, 300-900 px wide, the digit 25-55% of the page's height."""
    width = int(rng.integers(300, 901))
    height = int(width * rng.choice([0.75, 1.0, 1.33]))
    tint = tuple(float(v) for v in np.clip(rng.normal(0.88, 0.03) + rng.normal(0, 0.015, 3), 0.7, 1.0))
    page = Page(blank_page(rng, width, height, tint), int(min(width, height) * rng.uniform(0.25, 0.55)))
    pen_width = max(1.2, page.digit_height * rng.uniform(*pen))
    strokes = pen_strokes(digit, page.digit_height, pen_width)
    if ink == "pencil":
        strokes *= np.clip(rng.normal(0.75, 0.2, strokes.shape), 0.2, 1).astype(np.float32)
    return write(page, strokes, INKS[ink], rng, opacity=0.7 if ink == "pencil" else 0.95)


def uneven_light(page: Page, rng: Rng) -> Page:
    """A linear gradient across the page times a vignette: paper from full to half brightness."""
    h, w = page.pixels.shape[:2]
    y, x = np.ogrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (x / w - 0.5) + np.sin(angle) * (y / h - 0.5)) + 0.5
    light = 1 - rng.uniform(0.25, 0.45) * np.clip(ramp, 0, 1)
    r2 = ((x / w - 0.5) ** 2 + (y / h - 0.5) ** 2) * 2
    light *= 1 - rng.uniform(0.1, 0.3) * r2
    page.pixels *= light[..., None]
    return page


def shadow(page: Page, rng: Rng) -> Page:
    """A soft-edged shadow (a hand's or a phone's) over a random part of the page, maybe the digit."""
    h, w = page.pixels.shape[:2]
    y, x = np.ogrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.25, 0.25) * min(h, w)
    side = np.cos(angle) * (x - w / 2) + np.sin(angle) * (y - h / 2) - offset
    softness = rng.uniform(0.01, 0.06) * min(h, w)
    cover = 1 / (1 + np.exp(-side / softness))
    page.pixels *= (1 - rng.uniform(0.3, 0.55) * cover)[..., None]
    return page


def ruled_lines(page: Page, rng: Rng) -> Page:
    """Light blue rules (and on some pages a grid) across the whole page, under the ink."""
    h, w = page.pixels.shape[:2]
    spacing = page.digit_height * rng.uniform(0.35, 0.7)
    colour = np.array([0.55, 0.7, 0.9], np.float32)
    lines = np.zeros((h, w), np.float32)
    thickness = max(1, round(min(h, w) / 400))
    for y in np.arange(rng.uniform(0, spacing), h, spacing):
        cv2.line(lines, (0, int(y)), (w - 1, int(y)), 1.0, thickness)
    if rng.random() < 0.3:
        for x in np.arange(rng.uniform(0, spacing), w, spacing):
            cv2.line(lines, (int(x), 0), (int(x), h - 1), 1.0, thickness)
    alpha = (cv2.GaussianBlur(lines, (0, 0), 0.7) * rng.uniform(0.5, 0.8))[..., None]
    darker = np.minimum(page.pixels, colour)  # ink over the rule stays ink: the rule is under it
    page.pixels = page.pixels * (1 - alpha) + darker * alpha
    return page


def rotation(page: Page, rng: Rng, degrees: float = 10) -> Page:
    h, w = page.pixels.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-degrees, degrees), 1.0)
    page.pixels = cv2.warpAffine(page.pixels, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    return page


def blur(page: Page, rng: Rng) -> Page:
    """Slight defocus: a Gaussian a few tenths of a pen stroke to a stroke wide."""
    sigma = page.digit_height * rng.uniform(0.008, 0.02)
    page.pixels = cv2.GaussianBlur(page.pixels, (0, 0), max(0.6, sigma))
    return page


def noise(page: Page, rng: Rng, sigma: tuple[float, float] = (0.02, 0.05)) -> Page:
    """Sensor noise, stronger in the dark as in a real sensor, and a few dark specks of dust."""
    px = page.pixels
    grain = rng.standard_normal(px.shape[:2], np.float32)[..., None] * np.float32(rng.uniform(*sigma))
    px += grain * (1.2 - px)
    h, w = px.shape[:2]
    for _ in range(int(rng.integers(3, 15))):
        cv2.circle(px, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(1, 3)), (0.3,) * 3, -1)
    return page


def mild_noise(page: Page, rng: Rng) -> Page:
    page.pixels += rng.standard_normal(page.pixels.shape[:2], np.float32)[..., None] * np.float32(0.012)
    return page


def jpeg(page: Page, rng: Rng, quality: tuple[int, int] = (60, 91)) -> bytes:
    rgb = (np.clip(page.pixels, 0, 1) * 255).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=int(rng.integers(*quality)))
    return out.getvalue()


def whiteboard(digit: np.ndarray, rng: Rng) -> bytes:
    """Marker on a white board: thick strokes, a bright glare patch, a grey-blue cast, ghosting."""
    width = int(rng.integers(400, 901))
    height = int(width * 0.75)
    page = Page(blank_page(rng, width, height, (0.86, 0.9, 0.93)), int(height * rng.uniform(0.3, 0.6)))
    side = int(rng.integers(2))  # a badly wiped earlier digit beside this one
    ghost = pen_strokes(digit[::-1].copy(), page.digit_height, page.digit_height * 0.08)
    write(page, ghost, (0.6, 0.62, 0.66), rng, opacity=0.25, across=0.05 + 0.9 * side)
    strokes = pen_strokes(digit, page.digit_height, page.digit_height * rng.uniform(0.07, 0.12))
    colour = [(0.1, 0.1, 0.12), (0.1, 0.2, 0.6), (0.7, 0.1, 0.1), (0.1, 0.45, 0.2)][int(rng.integers(4))]
    write(page, strokes, colour, rng, across=0.6 - 0.2 * side)
    y, x = np.ogrid[0:height, 0:width]
    gy, gx = rng.uniform(0, height), rng.uniform(0, width)
    glare = np.exp(-((x - gx) ** 2 + (y - gy) ** 2) / (2 * (0.2 * width) ** 2)) * rng.uniform(0.1, 0.25)
    page.pixels = np.clip(page.pixels + glare[..., None], 0, 1)
    return jpeg(noise(uneven_light(page, rng), rng, (0.01, 0.03)), rng)


def chalkboard(digit: np.ndarray, rng: Rng) -> bytes:
    """Chalk on a dark green or black board: grainy light strokes and a haze of chalk dust."""
    width = int(rng.integers(400, 901))
    height = int(width * 0.75)
    tint = [(0.16, 0.24, 0.2), (0.12, 0.13, 0.14)][int(rng.integers(2))]
    page = Page(blank_page(rng, width, height, tint), int(height * rng.uniform(0.3, 0.6)))
    dust = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), width / 30)
    page.pixels += ((dust - dust.mean()) * 3 + 0.05)[..., None] * np.float32(0.3)
    strokes = pen_strokes(digit, page.digit_height, page.digit_height * rng.uniform(0.05, 0.1))
    strokes *= np.clip(rng.normal(0.8, 0.25, strokes.shape), 0.15, 1).astype(np.float32)  # grain
    write(page, strokes, (0.9, 0.9, 0.88), rng, opacity=0.85)
    return jpeg(noise(uneven_light(page, rng), rng, (0.01, 0.03)), rng)


def plain(digit: np.ndarray, rng: Rng) -> bytes:
    return jpeg(mild_noise(photo_of_digit(digit, rng), rng), rng, (85, 96))


def one(step: Callable[[Page, Rng], Page], ink: str = "black") -> Callable[[np.ndarray, Rng], bytes]:
    def render(digit: np.ndarray, rng: Rng) -> bytes:
        return jpeg(mild_noise(step(photo_of_digit(digit, rng, ink), rng), rng), rng, (85, 96))

    return render


def heavy_jpeg(digit: np.ndarray, rng: Rng) -> bytes:
    return jpeg(mild_noise(photo_of_digit(digit, rng), rng), rng, (30, 61))


def all_at_once(digit: np.ndarray, rng: Rng) -> bytes:
    """Uneven light, a shadow, blue or black ballpoint, ruled lines on half the pages, rotation up
    to 10 degrees, slight defocus, noise and JPEG quality 60-90, 300-900 px wide."""
    page = photo_of_digit(digit, rng, ink=str(rng.choice(["black", "blue"])))
    if rng.random() < 0.5:
        page = ruled_lines(page, rng)
    for step in (uneven_light, shadow, rotation, blur, noise):
        page = step(page, rng)
    return jpeg(page, rng)


def keep(page: Page, rng: Rng) -> Page:
    return page


RENDERINGS: dict[str, Callable[[np.ndarray, Rng], bytes]] = {
    "plain paper": plain,
    "uneven light": one(uneven_light),
    "shadow": one(shadow),
    "blue ink": one(keep, "blue"),
    "red ink": one(keep, "red"),
    "pencil": one(keep, "pencil"),
    "ruled lines": one(ruled_lines),
    "rotation": one(rotation),
    "blur": one(blur),
    "noise and specks": one(noise),
    "jpeg quality 30-60": heavy_jpeg,
    "all at once": all_at_once,
    "whiteboard": whiteboard,
    "chalkboard": chalkboard,
}


def render(kind: str, digit: np.ndarray, seed: int) -> bytes:
    """The JPEG bytes of one photo of `digit` (28x28 uint8 MNIST), the same for the same seed."""
    return RENDERINGS[kind](digit, np.random.default_rng(seed))


def main() -> None:
    """Writes a few photos of each rendering to a folder, to look at (never committed)."""
    import argparse
    from pathlib import Path

    from model.data import load_mnist

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path, help="folder to write JPEGs into")
    parser.add_argument("--per-kind", type=int, default=4, help="photos per rendering (default 4)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    test = load_mnist().test
    for k, kind in enumerate(RENDERINGS):
        for i in range(args.per_kind):
            name = f"{kind.replace(' ', '_')}-{i}-digit{test.labels[i]}.jpg"
            (args.out / name).write_bytes(render(kind, test.images[i], seed=k * 100_000 + i))


if __name__ == "__main__":
    main()
