"""Training digits redrawn with a pen: reproducible, labelled as their digit, strokes even."""

from __future__ import annotations

import cv2
import numpy as np

from model.data import Mnist, Split
from model.mnist_style import MNIST_STROKE, stroke_width
from model.training.pen_digits import SCALE, pen_digit_split, traced_with_a_pen


def test_the_same_seed_draws_the_same_digits_and_another_seed_others(mnist: Mnist) -> None:
    digits = mnist.train.head(100)
    first, again, other = (pen_digit_split(digits, 30, seed, 28, 20) for seed in (0, 0, 1))
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.images, other.images)
    assert first.images.shape == (30, 28, 28) and first.images.dtype == np.uint8
    assert set(first.labels.tolist()) <= set(digits.labels.tolist())


def test_each_digit_keeps_its_label() -> None:
    """A bar labelled 1 and a ring labelled 0: whichever is drawn, its label comes with it."""
    bar, ring = np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)
    cv2.line(bar, (14, 4), (14, 23), 255, 2)
    cv2.circle(ring, (14, 14), 8, 255, 2)
    drawn = pen_digit_split(Split(np.stack([bar, ring]), np.array([1, 0])), 20, 0, 28, 20)
    assert set(drawn.labels.tolist()) == {0, 1}
    for image, label in zip(drawn.images, drawn.labels, strict=True):
        rows, cols = np.nonzero(image > 127)
        is_bar = np.ptp(cols) < np.ptp(rows) / 3
        assert is_bar == (label == 1)


def test_the_pen_draws_one_even_stroke_whatever_the_digit_was_written_with() -> None:
    """A ring that swells from a hairline to a broad stroke comes back the same width all round."""
    ring = np.zeros((28, 28), np.float32)
    angles = np.linspace(0, 2 * np.pi, 400)
    for angle in angles:
        width = 1 + 3 * abs(np.sin(angle / 2))  # 1 px at the top, 4 px at the bottom
        centre = (round(14 + 8 * np.sin(angle)), round(14 - 8 * np.cos(angle)))
        cv2.circle(ring, centre, max(1, round(width / 2)), 1.0, -1)
    strokes = traced_with_a_pen(np.uint8(255 * ring), np.random.default_rng(0))
    assert strokes is not None and strokes.shape == (28 * SCALE, 28 * SCALE)
    top, bottom = strokes[: 14 * SCALE], strokes[14 * SCALE :]
    assert abs(stroke_width(top > 0) - stroke_width(bottom > 0)) < 0.15 * stroke_width(strokes > 0)


def test_every_pen_digit_has_strokes_of_mnist_width(mnist: Mnist) -> None:
    for image in pen_digit_split(mnist.train.head(200), 40, 2, 28, 20).images:
        assert 0.5 * MNIST_STROKE < stroke_width(image > 127) < 2 * MNIST_STROKE


def test_a_digit_without_ink_is_no_drawing() -> None:
    assert traced_with_a_pen(np.zeros((28, 28), np.uint8), np.random.default_rng(0)) is None
