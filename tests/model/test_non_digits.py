"""The generated images with no digit: reproducible, every kind inked, in MNIST's look."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.training.non_digits import DRAWS, NO_DIGIT, in_mnist_look, non_digit_split


def test_the_same_seed_draws_the_same_images_and_another_seed_others() -> None:
    first, again, other = (non_digit_split(30, seed, 28, 20) for seed in (0, 0, 1))
    assert np.array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    assert first.images.shape == (30, 28, 28) and first.images.dtype == np.uint8
    assert (first.labels == NO_DIGIT).all()


@pytest.mark.parametrize("size, box", [(28, 20), (40, 28)])
def test_each_image_has_its_ink_in_the_digit_box_centred_by_mass(size: int, box: int) -> None:
    for image in non_digit_split(40, 3, size, box).images:
        rows, cols = np.nonzero(image)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 <= box
        ink = image.astype(np.float64)
        centre = [(ink.sum(axis=1 - axis) * np.arange(size)).sum() / ink.sum() for axis in (0, 1)]
        assert np.allclose(centre, (size - 1) / 2, atol=1.5), centre


@pytest.mark.parametrize("draw", dict.fromkeys(DRAWS), ids=lambda draw: draw.__name__)
def test_every_kind_draws_ink(draw) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    drawn = [in_mnist_look(draw(rng), 28, 20) for _ in range(5)]
    assert all(image is not None and image.max() > 128 for image in drawn)


def test_a_picture_without_ink_is_no_image() -> None:
    assert in_mnist_look(Image.new("L", (50, 50), 0), 28, 20) is None
