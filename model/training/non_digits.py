"""Images that show no digit, for teaching the capsules to stay short on them.

Eq. 4 of the paper already says what the network should answer when no digit is present: every
T_k = 0, so every capsule is pushed below m-. Trained on MNIST alone, the network never sees
such an image and reads a printed "A" as a confident 4; a share of these in training is what
lets the digit check (docs/digit-check.md) flag what it was never shown. They are drawn from
sources the digit check's report (`bench/nondigit_sets.py`) never uses, so that its figures
measure what the network generalises to: letters in matplotlib's bundled STIX and Computer
Modern faces (the report prints Debian's DejaVu and Liberation faces), irregular polygons, pen
strokes along Bezier curves, and crops of matplotlib's sample photograph. Each is brought to
MNIST's look as the service brings an upload (`model.mnist_style`): its strokes at MNIST's
strength and width, scaled into the digit box, centred by mass.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from model.data import Split
from model.mnist_style import in_mnist_style

NO_DIGIT = -1  # the label of an image with no digit: no T_k is 1
FACES = (  # matplotlib's own faces, none of them in the report
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmmi10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
)
LETTERS = "ACDEFHJKLMNPQRTUVWXYacdefhjkmnprtuvwxy"  # none shaped like a digit (O, I, l, S, Z, B, g, q...)
CANVAS = 224  # px: each image is drawn this large, then scaled down to the digit box
Draw = Callable[[np.random.Generator], Image.Image]  # -> a picture, white ink on black


def mpl_data(*parts: str) -> Path:
    return Path(matplotlib.get_data_path()).joinpath(*parts)


def letter(rng: np.random.Generator) -> Image.Image:
    """A letter in one of the faces, in one of five stroke weights, turned by up to 15 degrees."""
    face = mpl_data("fonts", "ttf", FACES[rng.integers(len(FACES))])
    font = ImageFont.truetype(str(face), int(CANVAS * rng.uniform(0.5, 0.8)))
    image = Image.new("L", (CANVAS, CANVAS), 0)
    text = LETTERS[rng.integers(len(LETTERS))]
    ImageDraw.Draw(image).text((CANVAS / 2, CANVAS / 2), text, font=font, fill=255, anchor="mm")
    image = image.filter(ImageFilter.MaxFilter(int(rng.choice([1, 3, 5, 7, 9]))))
    return image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR)


def polygon(rng: np.random.Generator) -> Image.Image:
    """3 to 8 corners at random angles and radii, outlined with a pen or (a third of them) filled."""
    corners = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.15, 0.45, corners) * CANVAS
    points = [
        (CANVAS / 2 + r * np.cos(a), CANVAS / 2 + r * np.sin(a)) for a, r in zip(angles, radii, strict=True)
    ]
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    if rng.random() < 1 / 3:
        draw.polygon(points, fill=255)
    else:
        draw.line([*points, points[0]], fill=255, width=int(CANVAS * rng.uniform(0.02, 0.07)), joint="curve")
    return image


def pen_stroke(rng: np.random.Generator) -> Image.Image:
    """Two to four cubic Bezier curves end to end, drawn with a round pen."""
    start = rng.uniform(0.15, 0.85, 2) * CANVAS
    t = np.linspace(0.0, 1.0, 32)[:, None]
    points: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(2, 5))):
        c1, c2, end = rng.uniform(0.1, 0.9, (3, 2)) * CANVAS
        curve = (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end
        points += [(float(x), float(y)) for x, y in curve]
        start = end
    image = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(image).line(points, fill=255, width=int(CANVAS * rng.uniform(0.02, 0.07)), joint="curve")
    return image


@cache
def sample_photo() -> Image.Image:
    """matplotlib's photograph of Grace Hopper, in grey: decoded once, cropped thousands of times."""
    return Image.open(mpl_data("sample_data", "grace_hopper.jpg")).convert("L")


def photo_crop(rng: np.random.Generator) -> Image.Image:
    """A square crop of matplotlib's sample photograph, its darker (or lighter) half as ink."""
    photo = sample_photo()
    side = int(rng.integers(48, min(photo.size)))
    left, top = (int(rng.integers(0, n - side + 1)) for n in photo.size)
    grey = np.asarray(photo.crop((left, top, left + side, top + side)), dtype=np.float32)
    ink = grey.mean() - grey if rng.random() < 0.5 else grey - grey.mean()
    ink = np.clip(ink, 0, None)
    return Image.fromarray(np.uint8(255 * ink / max(float(ink.max()), 1.0)))


# each kind of picture, as often as its share
DRAWS: tuple[Draw, ...] = (letter,) * 4 + (polygon,) * 2 + (pen_stroke,) * 2 + (photo_crop,)


def in_mnist_look(picture: Image.Image, image_size: int, box: int) -> np.ndarray | None:
    """The picture as the service would give it to the model (`model.mnist_style`): strokes at
    MNIST's strength and width, in the box, centred by mass; (image_size, image_size) uint8, or
    None when the picture has no ink."""
    ink = np.asarray(picture, dtype=np.float32) / 255
    if not ink.any():
        return None
    return np.round(255 * in_mnist_style(ink, box, image_size)).astype(np.uint8)


def non_digit_split(count: int, seed: int, image_size: int, box: int) -> Split:
    """`count` images with no digit, labelled `NO_DIGIT`, the same for the same seed."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, image_size, image_size), dtype=np.uint8)
    drawn = 0
    while drawn < count:
        image = in_mnist_look(DRAWS[rng.integers(len(DRAWS))](rng), image_size, box)
        if image is not None:
            images[drawn] = image
            drawn += 1
    return Split(images, np.full(count, NO_DIGIT, dtype=np.int64))
