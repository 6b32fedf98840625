"""Write the sample images in `examples/` that the README's commands use.

Run once from the repository root (`python scripts/make_examples.py`); the images are committed,
so nothing downloads them later. Three kinds of input the service meets:
- `mnist-7.png`: an MNIST test digit as it is (28x28, white ink on black);
- `paper-3.jpg`: an MNIST test digit made to look like a phone photo of ink on paper (dark ink,
  uneven light, a slight tilt, grain, JPEG);
- `canvas-4.png`: what a browser canvas exports when a digit is drawn with round strokes on a
  transparent background (280x280 RGBA).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from model.data import load_mnist

OUT = Path("examples")
MNIST_TEST_INDEX = {7: 0, 3: 30}  # the first 7 and a clear 3 of the official test set


def mnist_digit(images: np.ndarray, index: int) -> Image.Image:
    return Image.fromarray(images[index], mode="L")


def paper_photo(digit: Image.Image, seed: int = 3) -> Image.Image:
    """Dark ink on off-white paper, lit from one corner, tilted, grainy: a phone snapshot."""
    rng = np.random.default_rng(seed)
    ink = digit.resize((240, 240), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.5))
    ink = ink.rotate(-6, resample=Image.Resampling.BICUBIC, expand=False)
    canvas = np.zeros((360, 320), dtype=np.float32)
    canvas[50:290, 40:280] = np.asarray(ink, dtype=np.float32) / 255.0
    y, x = np.mgrid[0:360, 0:320]
    light = 0.93 - 0.12 * (x / 320.0) * (y / 360.0)  # a little darker toward the bottom right
    paper = light - canvas * 0.7 + rng.normal(0.0, 0.02, canvas.shape)
    rgb = np.stack([paper * 0.98, paper * 0.96, paper * 0.90], axis=-1)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), mode="RGB")


def canvas_export() -> Image.Image:
    """A '4' drawn with round 20 px strokes on a transparent 280x280 canvas."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    strokes = [[(170, 50), (80, 170), (210, 170)], [(170, 90), (165, 240)]]
    for points in strokes:
        draw.line(points, fill=(0, 0, 0, 255), width=20, joint="curve")
        for px, py in (points[0], points[-1]):
            draw.ellipse((px - 10, py - 10, px + 10, py + 10), fill=(0, 0, 0, 255))
    return image


def main() -> None:
    test = load_mnist().test
    OUT.mkdir(exist_ok=True)
    for digit, index in MNIST_TEST_INDEX.items():
        assert test.labels[index] == digit, f"test image {index} is a {test.labels[index]}"
    mnist_digit(test.images, MNIST_TEST_INDEX[7]).save(OUT / "mnist-7.png", optimize=True)
    paper_photo(mnist_digit(test.images, MNIST_TEST_INDEX[3])).save(OUT / "paper-3.jpg", quality=85)
    canvas_export().save(OUT / "canvas-4.png", optimize=True)
    for path in sorted(OUT.iterdir()):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
