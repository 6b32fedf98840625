"""Fixed-seed inputs for the digit check: what the model should refuse, and digits it should not.

Everything is drawn by code from a seed, as encoded image files a user could upload, so the
report sends them through the service's own preprocessing. Non-digits: printed letters in the
fonts of Debian's fonts-dejavu-core and fonts-liberation (`scripts/ensure-fonts.sh` installs them;
a fixed list, so the set does not change with whatever else a machine has), geometric shapes, pen
scribbles, crops of the photographs bundled in scikit-image, textures and noise. Letters whose
glyph is a digit's shape (O, l, S, Z, B, g...) form a group of their own: no reconstruction can
tell an "O" from a 0. Digits: MNIST test images, the same digits redrawn as the demo page's
canvas exports, and as photos (`bench/photo_digits.py`, each of its renderings in turn).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from skimage import data as sample_images
from skimage.morphology import skeletonize

from bench.photo_digits import RENDERINGS, render

DEJAVU, LIBERATION = Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")
FONTS = tuple(DEJAVU / f"DejaVu{face}.ttf" for face in ("Sans", "Sans-Bold", "SansMono", "SansMono-Bold",
              "Serif", "Serif-Bold")) + tuple(LIBERATION / f"Liberation{family}-{style}.ttf"
              for family in ("Sans", "SansNarrow", "Serif", "Mono")
              for style in ("Regular", "Bold", "Italic", "BoldItalic"))  # fmt: skip
DIGIT_LIKE_LETTERS = "OoIlZzSsBbGgq"  # a 0, 1, 2, 5, 8, 6 or 9 in most fonts
LETTERS = "".join(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in DIGIT_LIKE_LETTERS
)
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "hubble_deep_field",
          "immunohistochemistry", "clock")  # fmt: skip
TEXTURES = ("brick", "grass", "gravel")
CANVAS = 280  # the demo page's drawing pad, in pixels
PEN = CANVAS / 14  # and its pen width


@dataclass(frozen=True)
class Group:
    name: str
    is_digit: bool
    files: list[bytes]


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: install fonts-dejavu-core and fonts-liberation (scripts/ensure-fonts.sh)"
        )
    return ImageFont.truetype(str(path), size)


def letter_image(letter: str, font: ImageFont.FreeTypeFont, angle: float = 0.0, dark_on_light: bool = True):
    """One printed letter, centred on a square page with a margin, as a user's photo crop would be."""
    side = int(font.size * 1.6)
    ink, paper = (0, 255) if dark_on_light else (255, 0)
    image = Image.new("L", (side, side), paper)
    ImageDraw.Draw(image).text((side / 2, side / 2), letter, fill=ink, font=font, anchor="mm")
    return image.rotate(angle, fillcolor=paper, resample=Image.Resampling.BICUBIC)


def letters(rng: np.random.Generator, n: int, alphabet: str = LETTERS) -> list[bytes]:
    files = []
    for _ in range(n):
        font = load_font(FONTS[rng.integers(len(FONTS))], int(rng.integers(48, 160)))
        letter = alphabet[rng.integers(len(alphabet))]
        image = letter_image(letter, font, float(rng.uniform(-10, 10)), bool(rng.random() < 0.8))
        files.append(encode(image))
    return files


def polygon(cx: float, cy: float, radius: float, corners: int, angle: float, inner: float = 1.0):
    """Vertices of a regular polygon, or of a star when `inner` < 1 (every other vertex pulled in)."""
    steps = corners * (2 if inner < 1.0 else 1)
    radii = [radius * (inner if k % 2 else 1.0) for k in range(steps)] if inner < 1.0 else [radius] * steps
    thetas = angle + 2 * np.pi * np.arange(steps) / steps
    return [(cx + r * np.cos(t), cy + r * np.sin(t)) for r, t in zip(radii, thetas, strict=True)]


def shape_image(kind: str, rng: np.random.Generator) -> Image.Image:
    """A square, rectangle, triangle, star, diamond, hexagon, plus sign or disc, filled or outlined."""
    image = Image.new("L", (CANVAS, CANVAS), 255)
    draw = ImageDraw.Draw(image)
    c, r = CANVAS / 2, float(rng.uniform(0.25, 0.4)) * CANVAS
    angle, width = float(rng.uniform(0, 2 * np.pi)), int(rng.integers(8, 28))
    filled = bool(rng.random() < 0.5)
    fill, outline = (0, None) if filled else (None, 0)
    if kind == "plus":
        bar = width * 1.5
        draw.rectangle((c - r, c - bar / 2, c + r, c + bar / 2), fill=0)
        draw.rectangle((c - bar / 2, c - r, c + bar / 2, c + r), fill=0)
        return image.rotate(np.degrees(angle), fillcolor=255)
    if kind == "disc":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=0)  # an outlined circle would be a 0
        return image
    if kind == "rectangle":
        points = [(c - r, c - r * 0.55), (c + r, c - r * 0.55), (c + r, c + r * 0.55), (c - r, c + r * 0.55)]
        image_r = Image.new("L", image.size, 255)
        ImageDraw.Draw(image_r).polygon(points, fill=fill, outline=outline, width=width)
        return image_r.rotate(np.degrees(angle), fillcolor=255)
    corners, inner = {"square": (4, 1.0), "triangle": (3, 1.0), "star": (5, 0.45), "diamond": (4, 1.0),
                      "hexagon": (6, 1.0)}[kind]  # fmt: skip
    if kind == "square":
        angle = np.pi / 4 + float(rng.uniform(-0.2, 0.2))
    draw.polygon(polygon(c, c, r, corners, angle, inner), fill=fill, outline=outline, width=width)
    return image


SHAPES = ("square", "rectangle", "triangle", "star", "diamond", "hexagon", "plus", "disc")


def shapes(rng: np.random.Generator, n: int) -> list[bytes]:
    return [encode(shape_image(SHAPES[i % len(SHAPES)], rng)) for i in range(n)]


def scribble_image(rng: np.random.Generator) -> Image.Image:
    """A pen wandering over the drawing pad: a smooth random walk with the demo page's pen."""
    image = Image.new("L", (CANVAS, CANVAS), 255)
    steps = int(rng.integers(12, 40))
    heading, speed = float(rng.uniform(0, 2 * np.pi)), CANVAS / 12
    point = rng.uniform(0.3, 0.7, 2) * CANVAS
    points = [tuple(point)]
    for _ in range(steps):
        heading += float(rng.normal(0, 0.9))
        point = np.clip(point + speed * np.array([np.cos(heading), np.sin(heading)]), PEN, CANVAS - PEN)
        points.append(tuple(point))
    ImageDraw.Draw(image).line(points, fill=0, width=int(PEN), joint="curve")
    return image


def scribbles(rng: np.random.Generator, n: int) -> list[bytes]:
    return [encode(scribble_image(rng)) for _ in range(n)]


def random_crop(picture: np.ndarray, rng: np.random.Generator, low: int = 48, high: int = 256) -> np.ndarray:
    h, w = picture.shape[:2]
    side = int(rng.integers(low, min(high, h, w) + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return picture[top : top + side, left : left + side]


def crops(names: tuple[str, ...], rng: np.random.Generator, n: int) -> list[bytes]:
    """JPEG crops of scikit-image's bundled sample pictures (no download: they ship in its wheel)."""
    pictures = [np.asarray(getattr(sample_images, name)()) for name in names]
    files = []
    for i in range(n):
        crop = random_crop(pictures[i % len(pictures)], rng)
        files.append(encode(Image.fromarray(crop), "JPEG", quality=int(rng.integers(70, 95))))
    return files


def photo_crops(rng: np.random.Generator, n: int) -> list[bytes]:
    return crops(PHOTOS, rng, n)


def textures(rng: np.random.Generator, n: int) -> list[bytes]:
    """Half crops of scikit-image's texture photos, half stripes and checkerboards."""
    files = crops(TEXTURES, rng, n // 2)
    yy, xx = np.mgrid[0:128, 0:128]
    for i in range(n - n // 2):
        period, angle = float(rng.uniform(6, 32)), float(rng.uniform(0, np.pi))
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        wave = np.sin(2 * np.pi * u / period)
        if i % 2:
            wave = wave * np.sin(2 * np.pi * v / period)  # a checkerboard
        files.append(encode(Image.fromarray(((wave > 0) * 255).astype(np.uint8))))
    return files


def noise(rng: np.random.Generator, n: int) -> list[bytes]:
    """Uniform, salt-and-pepper and smoothed (blobby) noise."""
    files = []
    for i in range(n):
        side = int(rng.integers(28, 200))
        if i % 3 == 0:
            pixels = rng.integers(0, 256, (side, side))
        elif i % 3 == 1:
            pixels = np.where(rng.random((side, side)) < 0.1, 0, 255)
        else:
            blurred = Image.fromarray(rng.integers(0, 256, (side, side)).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(side / 20)
            )
            pixels = np.asarray(blurred)
        files.append(encode(Image.fromarray(pixels.astype(np.uint8))))
    return files


def mnist_files(images: np.ndarray) -> list[bytes]:
    """MNIST digits as 28x28 PNGs, white on black, as the data set has them."""
    return [encode(Image.fromarray(image)) for image in images]


def canvas_image(digit: np.ndarray, pen: float = PEN) -> Image.Image:
    """An MNIST digit redrawn as the demo page exports a drawing: its skeleton traced with a round
    black pen (of the pad's width unless told) on the pad's white 280x280 canvas."""
    scale = CANVAS / digit.shape[0]
    skeleton = skeletonize(digit > 96)
    image = Image.new("L", (CANVAS, CANVAS), 255)
    draw = ImageDraw.Draw(image)
    ys, xs = np.nonzero(skeleton)
    cells = set(zip(ys.tolist(), xs.tolist(), strict=True))
    for y, x in sorted(cells):
        px, py = (x + 0.5) * scale, (y + 0.5) * scale
        draw.ellipse((px - pen / 2, py - pen / 2, px + pen / 2, py + pen / 2), fill=0)
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbour once: the stroke between them
            if (y + dy, x + dx) in cells:
                draw.line((px, py, px + dx * scale, py + dy * scale), fill=0, width=int(pen))
    return image


def canvas_exports(images: np.ndarray) -> list[bytes]:
    return [encode(canvas_image(image)) for image in images]


def photos(images: np.ndarray, seed: int) -> list[bytes]:
    """Photos of the digits, each rendering of `bench/photo_digits.py` in turn (paper, light,
    shadow, inks, ruled lines, rotation, blur, noise, JPEG, all at once, whiteboard, chalkboard)."""
    kinds = list(RENDERINGS)
    return [render(kinds[i % len(kinds)], image, seed * len(images) + i) for i, image in enumerate(images)]


NonDigitMaker = Callable[[np.random.Generator, int], list[bytes]]
NON_DIGITS: dict[str, NonDigitMaker] = {
    "letters": letters,
    "shapes": shapes,
    "scribbles": scribbles,
    "photo crops": photo_crops,
    "textures": textures,
    "noise": noise,
    "digit-like letters": lambda rng, n: letters(rng, n, DIGIT_LIKE_LETTERS),
}


def non_digit_groups(seed: int, per_group: int) -> list[Group]:
    """Every non-digit group, each from its own stream of the seed (adding a group changes no other)."""
    streams = np.random.SeedSequence(seed).spawn(len(NON_DIGITS))
    return [
        Group(name, False, make(np.random.default_rng(stream), per_group))
        for (name, make), stream in zip(NON_DIGITS.items(), streams, strict=True)
    ]


def digit_groups(images: np.ndarray, seed: int) -> list[Group]:
    """The same MNIST digits three ways: as they are, as canvas exports, as photos."""
    return [
        Group("MNIST test digits", True, mnist_files(images)),
        Group("canvas exports of digits", True, canvas_exports(images)),
        Group("photos of digits", True, photos(images, seed)),
    ]
