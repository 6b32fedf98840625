"""Uploaded bytes -> a checked, decoded, MNIST-style 28x28 image in [0, 1], white ink on black.

MNIST itself was made this way (LeCun et al.): the digit's bounding box is scaled so that its
longest side is 20 px, keeping the aspect ratio, and placed in a 28x28 field so that its centre
of mass is at the centre. Before that, whatever users send (photos of ink on paper, scans,
canvas exports with a transparent background) is turned into light ink on a dark background.
An image that is already MNIST-like comes out essentially unchanged.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ImageTooLarge, InvalidImage, NoDigitFound, UnsupportedMediaType

Preprocess = Literal["auto", "none"]
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
SIZE = 28
BOX = 20  # the longest side of the digit, as in MNIST
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (of full scale)
INK_LEVEL = (
    0.1  # after normalising, pixels above this count as ink when cropping (MNIST's faint rim is below)
)
JPEG_DRAFT = (256, 256)  # large JPEGs are decoded at reduced scale; the digit ends up 20 px anyway


def prepare(data: bytes, preprocess: Preprocess, max_pixels: int) -> np.ndarray:
    """The model's input (28, 28) float32 in [0, 1] for one uploaded file."""
    grey = to_grey(decode(data, max_pixels))
    return mnist_style(grey) if preprocess == "auto" else as_is(grey)


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Opens with Pillow, refuses oversized headers before decoding, applies EXIF orientation."""
    if not data:
        raise InvalidImage("the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"the image claims too many pixels: {e}") from e
    except UnidentifiedImageError as e:
        raise InvalidImage("the data is not an image Pillow can read") from e
    if image.format not in FORMATS:
        raise UnsupportedMediaType(
            f"{image.format} images are not supported; send one of {', '.join(FORMATS)}"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )
    try:
        if image.format == "JPEG":
            image.draft(image.mode, JPEG_DRAFT)
        image.load()  # GIF and TIFF: the first frame
        return ImageOps.exif_transpose(image)
    except Exception as e:  # Pillow's decoders raise many types for corrupt data; all are the client's
        raise InvalidImage(f"the image could not be decoded: {e}") from e


def to_grey(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1]; transparency composited onto the colour opposite the strokes.

    A canvas export is often black strokes on fully transparent black pixels: dropping the
    alpha channel would give a black square. Compositing onto white when the visible pixels are
    dark (and onto black when they are light) keeps the strokes and lets polarity detection
    treat the result like ink on paper.
    """
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0  # (H, W, 4)
    alpha = rgba[..., 3]
    grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"
    if alpha.min() >= 1.0:
        return grey
    strokes = float((grey * alpha).sum() / max(alpha.sum(), 1e-6))
    background = 1.0 if strokes < 0.5 else 0.0
    return grey * alpha + background * (1.0 - alpha)


def as_is(grey: np.ndarray) -> np.ndarray:
    """`preprocess=none`: a 28x28 image fed unchanged (values / 255, no inversion)."""
    if grey.shape != (SIZE, SIZE):
        h, w = grey.shape
        raise InvalidImage(f"preprocess=none needs a 28x28 image, got {w}x{h}")
    if grey.max() < MIN_CONTRAST:
        raise NoDigitFound("the image is blank")
    return grey.astype(np.float32)


def mnist_style(grey: np.ndarray) -> np.ndarray:
    """Polarity, background removal, crop to the ink, 20 px box, centre of mass at the centre."""
    ink = normalise_ink(grey)
    rows, cols = np.nonzero(ink > INK_LEVEL)
    if rows.size == 0:
        raise NoDigitFound("no digit found: the image has no ink that stands out from its background")
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return centre_by_mass(fit_box(crop, BOX))


def normalise_ink(grey: np.ndarray) -> np.ndarray:
    """Light ink on a zero background, scaled so the ink's strong strokes reach 1.

    The border's median is taken as the background: light paper means dark ink, so the image is
    inverted. Everything at or below the background level becomes 0.
    """
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    if np.median(border) > 0.5:
        grey, border = 1.0 - grey, 1.0 - border
    background = float(np.median(border))
    peak = float(grey.max())
    if peak - background < MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image has no ink that stands out from its background")
    return np.clip((grey - background) / (peak - background), 0.0, 1.0).astype(np.float32)


def fit_box(crop: np.ndarray, box: int) -> np.ndarray:
    """Scales so that the longest side is `box` pixels, keeping the aspect ratio."""
    h, w = crop.shape
    ratio = box / max(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    resized = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Pastes `digit` into 28x28 so that its centre of mass lands on the field's centre."""
    h, w = digit.shape
    mass = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(h)) / mass
    cx = (digit.sum(axis=0) @ np.arange(w)) / mass
    centre = SIZE / 2  # where MNIST puts it: its mean centre of mass is (14.0, 14.0)
    top = int(np.clip(round(centre - cy), 0, SIZE - h))
    left = int(np.clip(round(centre - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return out
