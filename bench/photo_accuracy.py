"""Accuracy per kind of input through the service's own preprocessing and the shipped model.

Prints one row per kind: MNIST test digits sent as PNGs (and as JPEGs, and with noise), canvas
exports (and drawings with a broad brush), printed digits, UCI-style 8x8 digits enlarged,
pictures cropped close around a digit, and MNIST test digits rendered as photos
(bench/photo_digits.py) with each degradation alone, all at once, on a whiteboard and on a
chalkboard, and the same digits in an independently written set of scenes
(bench/photo_scenes.py: perspective, a desk around the page, squared paper, pencil, marker,
colour casts, tiny and huge images...), and in a third set that enlarges each digit's own grey
levels as the ink instead of redrawing it with a pen (bench/photo_enlarged.py: strokes as broad
as MNIST's, under light, shadow, rules...). An image for which preprocessing finds no digit
counts as wrong. Fixed seeds: the same sets on every run.

    python bench/photo_accuracy.py                      # 300 photos per kind and scene, all 10k MNIST
    python bench/photo_accuracy.py --photos 50 --scenes 50 --mnist 1000
    python bench/photo_accuracy.py --scenes 100 --only scene:   # the independent scenes alone
    python bench/photo_accuracy.py --held-out --scenes 100 --only scene:   # digits and seeds not tuned on
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.errors import NoDigitFound  # noqa: E402
from app.imaging import Layout, prepare  # noqa: E402
from bench import photo_enlarged, photo_scenes  # noqa: E402
from bench.nondigit_sets import CANVAS, canvas_image  # noqa: E402
from bench.photo_digits import RENDERINGS, render  # noqa: E402
from model.checkpoint import load_weights, read_model_card  # noqa: E402
from model.data import load_mnist  # noqa: E402
from model.mnist_style import stroke_width  # noqa: E402

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "capsnet-mnist.safetensors"
MAX_PIXELS = 4096 * 4096
FONTS = Path("/usr/share/fonts/truetype")  # DejaVu and Liberation, where installed
Prepare = Callable[[bytes], np.ndarray]
Labelled = Iterator[tuple[bytes, int]]
Render = Callable[[str, np.ndarray, int], bytes]  # (condition, 28x28 digit, seed) -> encoded photo
HELD_OUT_DIGITS = 6000  # --held-out: photos of the test digits from here on,
HELD_OUT_SEEDS = 500_000  # drawn from seeds this far past the report's


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def mnist_pngs(images: np.ndarray, labels: np.ndarray) -> Labelled:
    for image, label in zip(images, labels, strict=True):
        yield png(image), int(label)


def mnist_jpegs(images: np.ndarray, labels: np.ndarray) -> Labelled:
    """The 28x28 digits as JPEGs of quality 30 to 90: JPEG's ringing puts them out of MNIST's layout."""
    rng = np.random.default_rng(11)
    for image, label in zip(images, labels, strict=True):
        out = io.BytesIO()
        Image.fromarray(image).save(out, "JPEG", quality=int(rng.integers(30, 91)))
        yield out.getvalue(), int(label)


def noisy_mnist(images: np.ndarray, labels: np.ndarray) -> Labelled:
    """The 28x28 digits with Gaussian noise of sigma 5 to 30 grey levels, as PNGs."""
    rng = np.random.default_rng(12)
    for image, label in zip(images, labels, strict=True):
        noise = rng.normal(0.0, rng.uniform(5, 30), image.shape)
        yield png(np.uint8(np.clip(image + noise, 0, 255))), int(label)


def canvas_exports(images: np.ndarray, labels: np.ndarray) -> Labelled:
    """280x280 black strokes on transparent black, as a browser canvas exports a drawn digit."""
    for image, label in zip(images, labels, strict=True):
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., 3] = np.asarray(Image.fromarray(image).resize((280, 280), Image.Resampling.BILINEAR))
        yield png(rgba), int(label)


BROAD_BRUSH = CANVAS / 5.5  # a drawing app's broad brush: 2.5 times the demo pad's pen


def broad_brush_drawings(images: np.ndarray, labels: np.ndarray) -> Labelled:
    """Digits drawn on a white 280x280 canvas with a round brush a fifth as wide as the canvas."""
    for image, label in zip(images, labels, strict=True):
        yield png(np.asarray(canvas_image(image, BROAD_BRUSH))), int(label)


def printed_digits(count: int) -> Labelled:
    """Digits typeset in every DejaVu/Liberation font found, black on white, at a few sizes."""
    fonts = sorted(FONTS.glob("*/DejaVu*.ttf")) + sorted(FONTS.glob("*/Liberation*.ttf"))
    rng = np.random.default_rng(7)
    for i in range(count):
        font = ImageFont.truetype(str(fonts[i % len(fonts)]), int(rng.integers(24, 120)))
        digit = i % 10
        page = Image.new("L", (160, 160), 255)
        ImageDraw.Draw(page).text((80, 80), str(digit), font=font, fill=0, anchor="mm")
        yield png(np.asarray(page)), digit


def uci_style(images: np.ndarray, labels: np.ndarray) -> Labelled:
    """The digit's box reduced to 8x8 with 17 grey levels (as in UCI's optdigits), enlarged 4x."""
    for image, label in zip(images, labels, strict=True):
        rows, cols = np.nonzero(image)
        crop = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        side = max(crop.shape)
        square = np.zeros((side, side), np.uint8)
        square[(side - crop.shape[0]) // 2 :][: crop.shape[0], (side - crop.shape[1]) // 2 :][
            :, : crop.shape[1]
        ] = crop
        small = np.asarray(Image.fromarray(square).resize((8, 8), Image.Resampling.BOX), np.float32)
        levels = np.round(small / 255 * 16) * 16
        yield png(np.kron(np.clip(levels, 0, 255), np.ones((4, 4))).astype(np.uint8)), int(label)


def cropped_close(digit: np.ndarray, side: int) -> np.ndarray:
    """The digit's own box, squared and enlarged to `side`: its strokes' ends touch the frame."""
    rows, cols = np.nonzero(digit > 30)
    box = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    square = np.zeros((max(box.shape),) * 2, np.uint8)
    top, left = (square.shape[0] - box.shape[0]) // 2, (square.shape[1] - box.shape[1]) // 2
    square[top : top + box.shape[0], left : left + box.shape[1]] = box
    return np.asarray(Image.fromarray(square).resize((side, side), Image.Resampling.BICUBIC))


def jpeg_file(grey: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(grey).save(out, "JPEG", quality=90)
    return out.getvalue()


def close_crops(images: np.ndarray, labels: np.ndarray, dark_ink: bool) -> Labelled:
    """Pictures cropped to the digit, 64 to 400 px, as JPEGs: dark ink on light or light on dark."""
    sides = [64, 100, 200, 400]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        crop = cropped_close(image, sides[i % len(sides)])
        yield jpeg_file(255 - crop if dark_ink else crop), int(label)


def drawn(make: Render, condition: str, images: np.ndarray, labels: np.ndarray, seed: int) -> Labelled:
    """Photos of `images` made by a generator's render function, the i-th from seed `seed + i`."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        yield make(condition, image, seed + i), int(label)


def accuracy(model: torch.nn.Module, preprocess: Prepare, samples: Labelled) -> tuple[float, int, int]:
    """(fraction correct, how many, how many found no digit); the model runs in batches of 256."""
    inputs, labels, predicted, missed = [], [], [], 0
    for data, label in samples:
        try:
            inputs.append(preprocess(data))
            labels.append(label)
        except NoDigitFound:
            missed += 1
    with torch.inference_mode():
        for start in range(0, len(inputs), 256):
            batch = torch.from_numpy(np.stack(inputs[start : start + 256]))[:, None]
            predicted += model.poses(batch).norm(dim=-1).argmax(dim=-1).tolist()
    correct = int((np.array(predicted) == np.array(labels)).sum()) if labels else 0
    total = len(labels) + missed
    return correct / total, total, missed


def sets(
    photos_per_kind: int, scenes_per_condition: int, mnist_count: int, held_out: bool = False
) -> Iterator[tuple[str, Labelled]]:
    """(name, samples) for every set; the samples are made only when iterated. `held_out`: the
    photos, scenes and enlarged digits of test digits from `HELD_OUT_DIGITS` on, drawn from
    seeds `HELD_OUT_SEEDS` past the report's."""
    test = load_mnist().test
    images, labels = test.images, test.labels
    yield "MNIST test digits as PNG", mnist_pngs(images[:mnist_count], labels[:mnist_count])
    yield "MNIST test digits as JPEG (q 30-90)", mnist_jpegs(images[:1000], labels[:1000])
    yield "MNIST test digits with noise", noisy_mnist(images[:1000], labels[:1000])
    yield "canvas exports (transparent)", canvas_exports(images[:1000], labels[:1000])
    yield "canvas drawings, broad brush", broad_brush_drawings(images[:1000], labels[:1000])
    yield "printed digits (DejaVu/Liberation)", printed_digits(500)
    yield "UCI-style 8x8, enlarged 4x", uci_style(images[:1000], labels[:1000])
    yield "cropped close, dark ink (JPEG)", close_crops(images[:1000], labels[:1000], dark_ink=True)
    yield "cropped close, light ink (JPEG)", close_crops(images[:1000], labels[:1000], dark_ink=False)
    # The three photo generators draw from different test digits (the report's photos from the end
    # of the set, its scenes from the middle, its enlarged digits from 2000 on), every condition
    # from its own seeds.
    photo_sets = [  # (prefix, generator, its conditions, first test digit, how many, first seed)
        ("photo", render, RENDERINGS, len(images) - photos_per_kind, photos_per_kind, photo_seed),
        ("scene", photo_scenes.render, photo_scenes.CONDITIONS, 5000, scenes_per_condition, scene_seed),
        ("enlarged", photo_enlarged.render, photo_enlarged.CONDITIONS, 2000, photos_per_kind, enlarged_seed),
    ]
    for prefix, make, conditions, first, count, first_seed in photo_sets:
        first = HELD_OUT_DIGITS if held_out else first
        chosen = slice(first, first + count)
        for condition in conditions:
            seed = first_seed(condition) + (HELD_OUT_SEEDS if held_out else 0)
            yield f"{prefix}: {condition}", drawn(make, condition, images[chosen], labels[chosen], seed)


def photo_seed(kind: str) -> int:
    """The seed of a kind's first photo (`bench/photo_digits.py`) in the report."""
    return 1_000_000 * (list(RENDERINGS).index(kind) + 1)


def scene_seed(condition: str) -> int:
    """The seed of a condition's first scene in the report (the i-th is drawn from this + i)."""
    return 7_000_000 * (list(photo_scenes.CONDITIONS).index(condition) + 1)


def enlarged_seed(condition: str) -> int:
    """The seed of a condition's first enlarged-digit photo in the report."""
    return 9_000_000 * (photo_enlarged.CONDITIONS.index(condition) + 1)


def mnist_stroke_widths(count: int = 60_000, level: float = 0.1) -> np.ndarray:
    """MNIST's stroke widths at its own 20 px box, by the pipeline's own measure, over the pixels
    above `level` (0.1: its whole strokes; 0.5: half strength, without the anti-aliasing)."""
    images = load_mnist().train.images[:count]
    return np.array([stroke_width(image > level * 255) for image in images])


def run(
    preprocess_factory: Callable[[Layout], Prepare],
    counts: tuple[int, int, int],
    only: str = "",
    held_out: bool = False,
) -> None:
    """Prints one row per set whose name contains `only`; `counts`: photos, scenes, MNIST digits."""
    model = load_weights(WEIGHTS, torch.device("cpu")).eval()
    card = read_model_card(WEIGHTS)
    layout = Layout.of_model({"config": model.config.to_dict(), "input": card.get("input")})
    preprocess = preprocess_factory(layout)
    print(f"{'input':<40} {'n':>6} {'correct':>8} {'no digit':>9} {'s':>6}")
    for name, samples in sets(*counts, held_out=held_out):
        if only not in name:
            continue
        start = time.perf_counter()
        correct, total, missed = accuracy(model, preprocess, samples)
        took = time.perf_counter() - start
        print(f"{name:<40} {total:>6} {correct:>8.1%} {missed:>9} {took:>6.1f}", flush=True)


def service_preprocessing(layout: Layout) -> Prepare:
    return lambda data: prepare(data, "auto", MAX_PIXELS, layout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=300, help="photos per kind (default 300)")
    parser.add_argument("--scenes", type=int, default=300, help="scenes per condition (default 300)")
    parser.add_argument("--only", default="", help="only the sets whose name contains this (e.g. 'scene:')")
    parser.add_argument("--mnist", type=int, default=10_000, help="MNIST test digits as PNG (default 10000)")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help=f"photos of test digits {HELD_OUT_DIGITS} on, from seeds {HELD_OUT_SEEDS:,} past the report's",
    )
    parser.add_argument("--strokes", action="store_true", help="print MNIST's stroke widths and exit")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.strokes:
        whole, half = mnist_stroke_widths(), mnist_stroke_widths(level=0.5)
        print(
            f"MNIST mean stroke width at its 20 px box: {whole.mean():.2f} px; at half strength "
            f"{half.mean():.2f} px, 99% of digits under {np.percentile(half, 99):.2f} px"
        )
        return
    run(service_preprocessing, (args.photos, args.scenes, args.mnist), args.only, args.held_out)


if __name__ == "__main__":
    main()
