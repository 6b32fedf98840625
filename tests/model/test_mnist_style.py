"""MNIST's look: strokes brought to its strength and width, the ink in its box, centred by mass."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.mnist_style import (
    BROAD,
    MNIST_CORE,
    MNIST_STROKE,
    at_full_strength,
    in_mnist_style,
    stroke_width,
    thin,
)


def ring(side: int, radius: int, width: int) -> np.ndarray:
    """(side, side) float32: a 0 drawn as a ring of ink at full strength."""
    digit = np.zeros((side, side), np.float32)
    cv2.circle(digit, (side // 2, side // 2), radius, 1.0, width)
    return digit


def test_a_stroke_faded_under_glare_is_brought_to_full_strength() -> None:
    digit = ring(120, 45, 8)
    y, x = np.mgrid[0:120, 0:120]
    glare = 0.6 * np.exp(-((x - 15) ** 2 + (y - 60) ** 2) / (2 * 20.0**2))  # a spot on its left side
    faded = digit * 0.8 * (1 - glare).astype(np.float32)
    assert faded[digit > 0].min() < 0.4
    out = at_full_strength(faded, digit > 0)
    core = cv2.erode((digit > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert out[core].min() > 0.75  # 0.4 of the rest's strength at the glare's middle before


def test_ink_far_fainter_than_the_strokes_stays_faint() -> None:
    digit = ring(120, 45, 8)
    speck = (slice(58, 62), slice(58, 62))  # a smudge in the ring's middle, a tenth as strong
    digit[speck] = 0.1
    out = at_full_strength(digit, digit > 0)
    assert out[speck].max() == pytest.approx(0.1)


def test_a_felt_markers_broad_strokes_are_thinned_towards_mnists() -> None:
    box = 20
    broad = ring(200, 70, 50)  # at the box's scale: strokes 3.9 px wide on a 14 px ring
    thinned = thin(broad, box)
    scale = box / 200
    assert stroke_width(broad >= 0.5) * scale > BROAD
    assert stroke_width(thinned >= 0.5) * scale == pytest.approx(MNIST_CORE, abs=0.6)
    count, _ = cv2.connectedComponents((thinned >= 0.5).astype(np.uint8))
    assert count == 2  # still one closed ring


def test_strokes_as_broad_as_mnists_are_not_thinned() -> None:
    pen = ring(200, 70, 24)  # 2.4 px at the box's scale: MNIST's own
    assert np.array_equal(thin(pen, 20), pen)


def test_a_filled_shape_is_not_thinned() -> None:
    disc = np.zeros((200, 200), np.float32)
    cv2.circle(disc, (100, 100), 80, 1.0, -1)  # ink 8 px deep at the box's scale: an area, no stroke
    assert np.array_equal(thin(disc, 20), disc)


def test_ink_filling_its_whole_crop_is_brought_to_full_strength_without_its_unbounded_pen() -> None:
    """Its edge is the crop's, so no perimeter is measured and its width is unbounded; a pen that
    wide (26,000 px for this square) overflowed OpenCV and crashed the server."""
    square = np.full((81, 81), 0.6, np.float32)
    assert stroke_width(square > 0) > 1000
    assert np.array_equal(at_full_strength(square, square > 0), np.ones_like(square))


def test_a_hairline_is_brought_to_mnists_width_in_its_box_centred_by_mass() -> None:
    hairline = ring(200, 80, 2)  # 0.2 px at the box's scale
    digit = in_mnist_style(hairline, 20, 28)
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    rows, cols = np.nonzero(digit)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20
    centre = [(digit.sum(axis=1 - axis) @ np.arange(28)) / digit.sum() for axis in (0, 1)]
    assert np.allclose(centre, 14, atol=0.5)  # where MNIST's mean centre of mass is
    assert stroke_width(digit > 0.5) == pytest.approx(MNIST_STROKE, abs=1.0)


def test_a_small_pictures_broad_strokes_are_kept_when_asked() -> None:
    small = ring(40, 13, 10)  # 5 px at the box's scale
    assert stroke_width(in_mnist_style(small, 20, 28) >= 0.5) < stroke_width(
        in_mnist_style(small, 20, 28, thin_broad=False) >= 0.5
    )
