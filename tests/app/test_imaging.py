"""Preprocessing without the model: what users send becomes an MNIST-style 28x28 input."""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from app.errors import ImageTooLarge, InvalidImage, NoDigitFound, UnsupportedMediaType
from app.imaging import Layout
from app.imaging import prepare as prepare_for
from app.imaging.decode import decode, to_grey
from app.imaging.ink import polarity
from bench.photo_accuracy import uci_style
from model.capsnet import CapsNetConfig
from model.checkpoint import INPUT_CONVENTION
from model.data import Mnist
from model.mnist_style import in_mnist_style
from model.training.non_digits import in_mnist_look, letter, pen_stroke, polygon
from model.training.pen_digits import traced_with_a_pen

MAX_PIXELS = 4096 * 4096
LAYOUT = Layout.of_model({"config": CapsNetConfig().to_dict(), "input": INPUT_CONVENTION})


def prepare(data: bytes, preprocess: str, max_pixels: int) -> np.ndarray:
    return prepare_for(data, preprocess, max_pixels, LAYOUT)


def test_mnist_digits_pass_through_essentially_unchanged(
    mnist: Mnist, png_bytes: Callable[..., bytes]
) -> None:
    for image in mnist.test.images[:50]:
        out = prepare(png_bytes(image), "auto", MAX_PIXELS)
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert np.abs(out - image / 255.0).mean() < 0.01


def test_a_digit_already_in_mnist_layout_reaches_the_model_untouched(
    mnist: Mnist, png_bytes: Callable[..., bytes]
) -> None:
    for image in mnist.test.images[:20]:
        expected = image / np.float32(255)
        assert np.allclose(prepare(png_bytes(image), "auto", MAX_PIXELS), expected, atol=1e-6)
        assert np.allclose(prepare(png_bytes(255 - image), "auto", MAX_PIXELS), expected, atol=1e-6)


def test_a_digit_out_of_mnist_layout_is_laid_out_again(mnist: Mnist, png_bytes: Callable[..., bytes]) -> None:
    image = mnist.test.images[0]
    shifted = np.roll(image, (3, -3), axis=(0, 1))  # off centre, still 28x28 on black
    dim = (image * 0.5).astype(np.uint8)  # faint ink
    for moved in (shifted, dim):
        out = prepare(png_bytes(moved), "auto", MAX_PIXELS)
        assert not np.allclose(out, moved / 255.0, atol=1e-3)
        mass = out.sum()
        centre = (out.sum(axis=1) @ np.arange(28) / mass, out.sum(axis=0) @ np.arange(28) / mass)
        assert np.abs(np.array(centre) - 14).max() <= 0.5
        assert np.percentile(out[out > 0], 90) > 0.9


def test_dark_on_light_is_inverted(mnist: Mnist, png_bytes: Callable[..., bytes]) -> None:
    image = mnist.test.images[0]
    light = prepare(png_bytes(255 - image), "auto", MAX_PIXELS)
    assert np.abs(light - prepare(png_bytes(image), "auto", MAX_PIXELS)).max() < 1e-6


def test_transparent_canvas_export_comes_out_as_a_digit(
    mnist: Mnist, png_bytes: Callable[..., bytes]
) -> None:
    image = mnist.test.images[0]
    rgba = np.zeros((28, 28, 4), np.uint8)  # black strokes, alpha = ink, on transparent black
    rgba[..., 3] = image
    out = prepare(png_bytes(rgba), "auto", MAX_PIXELS)
    assert np.abs(out - prepare(png_bytes(image), "auto", MAX_PIXELS)).mean() < 0.01


def test_a_large_photo_like_image_is_cropped_scaled_and_centred(digit_image: np.ndarray) -> None:
    big = np.array(Image.fromarray(255 - digit_image).resize((400, 300)), dtype=np.float32)
    paper = np.clip(big * 0.7 + 60 + np.random.default_rng(0).normal(0, 3, big.shape), 0, 255).astype(
        np.uint8
    )
    data = io.BytesIO()
    Image.fromarray(paper).save(data, "JPEG", quality=90)
    out = prepare(data.getvalue(), "auto", MAX_PIXELS)
    rows, cols = np.nonzero(out > 0.1)
    assert rows.max() - rows.min() + 1 <= 21 and cols.max() - cols.min() + 1 <= 21
    mass = out.sum()
    centre = ((out.sum(1) @ np.arange(28)) / mass, (out.sum(0) @ np.arange(28)) / mass)
    assert np.allclose(centre, 14, atol=1.0)


def test_exif_orientation_is_applied(digit_image: np.ndarray, png_bytes: Callable[..., bytes]) -> None:
    rotated = Image.fromarray(np.rot90(digit_image, k=-1))  # stored turned clockwise
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation tag: turn 90 degrees anticlockwise to display
    data = io.BytesIO()
    rotated.save(data, "JPEG", quality=95, exif=exif.tobytes())
    upright = prepare(png_bytes(digit_image), "auto", MAX_PIXELS)
    assert np.abs(prepare(data.getvalue(), "auto", MAX_PIXELS) - upright).mean() < 0.05


def test_preprocess_none_feeds_the_pixels_as_they_are(digit_image: np.ndarray, png_bytes) -> None:
    out = prepare(png_bytes(digit_image), "none", MAX_PIXELS)
    assert np.array_equal(out, digit_image / np.float32(255))


def test_preprocess_none_needs_28x28(png_bytes: Callable[..., bytes]) -> None:
    with pytest.raises(InvalidImage, match="28x28"):
        prepare(png_bytes(np.full((30, 30), 255, np.uint8)), "none", MAX_PIXELS)


@pytest.mark.parametrize("value", [0, 255, 128])
def test_a_uniform_image_has_no_digit(value: int, png_bytes: Callable[..., bytes]) -> None:
    with pytest.raises(NoDigitFound):
        prepare(png_bytes(np.full((64, 64), value, np.uint8)), "auto", MAX_PIXELS)


def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(png_bytes) -> None:
    data = png_bytes(np.zeros((1, 1), np.uint8))
    with pytest.raises(ImageTooLarge):
        prepare(data, "auto", max_pixels=0)


def test_garbage_and_truncated_images_are_invalid(png_bytes: Callable[..., bytes], digit_image) -> None:
    with pytest.raises(InvalidImage):
        prepare(b"definitely not an image", "auto", MAX_PIXELS)
    with pytest.raises(InvalidImage):
        prepare(png_bytes(digit_image)[:60], "auto", MAX_PIXELS)


def test_an_image_format_outside_the_list_is_unsupported(digit_image: np.ndarray) -> None:
    data = io.BytesIO()
    Image.fromarray(digit_image).save(data, "ICO")
    with pytest.raises(UnsupportedMediaType):
        prepare(data.getvalue(), "auto", MAX_PIXELS)


def test_the_layout_comes_from_the_model() -> None:
    assert (LAYOUT.size, LAYOUT.box) == (28, 20)
    assert Layout.of_model({"config": {"image_size": 40}, "input": {"digit_box": 30}}) == Layout(40, 30)
    assert Layout.of_model({"config": {"image_size": 56}, "input": None}) == Layout(56, 40)


def test_a_larger_model_input_gets_a_larger_digit(digit_image: np.ndarray, png_bytes) -> None:
    out = prepare_for(png_bytes(digit_image), "auto", MAX_PIXELS, Layout(40, 30))
    rows, cols = np.nonzero(out > 0.1)
    assert out.shape == (40, 40) and rows.max() - rows.min() + 1 in (29, 30, 31)


def test_a_small_digit_that_fills_its_frame_keeps_its_polarity(mnist: Mnist) -> None:
    """UCI-style 8x8 digits enlarged: cropped to the digit, whose ink may cover most of the frame
    and be no sparse tail of the histogram; their border is still mostly paper."""
    for data, _ in uci_style(mnist.test.images[:30], mnist.test.labels[:30]):
        grey = to_grey(decode(data, 4096 * 4096))
        assert polarity(grey) is False
        assert polarity(1.0 - grey) is True


def test_a_fat_blot_on_a_clean_canvas_stays_solid(png_bytes: Callable[..., bytes]) -> None:
    """A canvas export's background is one exact level: it is the paper, however wide the ink
    (a 9 whose loop was filled in with a broad brush), not something a closing must estimate."""
    canvas = np.full((280, 280), 255, np.uint8)
    cv2.circle(canvas, (140, 105), 60, 50, thickness=-1)  # a dark grey brush
    cv2.line(canvas, (195, 110), (170, 265), 50, thickness=16)
    ink = prepare(png_bytes(canvas), "auto", MAX_PIXELS) > 0.5
    rows, cols = np.nonzero(ink)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert ink.sum() > 0.4 * box  # solid: hollowed out to its rim, it covered a third


@pytest.mark.parametrize(
    "corners",
    [((24, 24), (104, 104)), ((30, 50), (110, 80)), ((60, 10), (68, 118))],
    ids=["square", "lying bar", "upright bar"],
)
def test_a_filled_rectangle_is_laid_out_like_any_ink(corners, png_bytes: Callable[..., bytes]) -> None:
    """Cropped to itself, a filled rectangle is all ink with no perimeter inside its crop, so its
    strokes measure unbounded; the pen built from that width overflowed OpenCV, a crash of the
    whole server rather than an error."""
    picture = np.full((128, 128), 255, np.uint8)
    cv2.rectangle(picture, *corners, 0, thickness=-1)
    x = prepare(png_bytes(picture), "auto", MAX_PIXELS)
    assert x.shape == (28, 28) and x.max() == pytest.approx(1.0)


@pytest.mark.parametrize("draw", [letter, polygon, pen_stroke], ids=lambda draw: draw.__name__)
def test_a_non_digit_drawn_for_training_looks_as_the_service_would_show_it(draw) -> None:  # noqa: ANN001
    """Training teaches the capsules to stay short on these; it only carries over to uploads if
    the pictures reach the model the way an upload of them would."""
    rng = np.random.default_rng(7)
    differences = []
    for _ in range(8):
        picture = draw(rng)
        trained = in_mnist_look(picture, LAYOUT.size, LAYOUT.box).astype(np.float32) / 255
        upload = io.BytesIO()
        Image.fromarray(255 - np.asarray(picture)).save(upload, "PNG")  # dark ink on white paper
        served = prepare(upload.getvalue(), "auto", MAX_PIXELS)
        differences.append(float(np.abs(trained - served).mean()))
    # most come out the same; a piece the service drops as a speck (a letter's dot) costs up to 0.06
    assert np.median(differences) < 0.002 and max(differences) < 0.1, differences


def test_a_digit_redrawn_with_a_pen_for_training_looks_as_the_service_would_show_its_drawing(
    mnist: Mnist,
) -> None:
    """Training's pen-drawn digits stand for drawings users upload: the same strokes, drawn dark
    on white and uploaded, must reach the model as training showed them."""
    rng = np.random.default_rng(5)
    differences = []
    for digit in mnist.test.images[:12]:
        strokes = traced_with_a_pen(digit, rng)
        assert strokes is not None
        trained = in_mnist_style(strokes, LAYOUT.box, LAYOUT.size)
        upload = io.BytesIO()
        Image.fromarray(np.uint8(255 - 255 * strokes)).save(upload, "PNG")
        served = prepare(upload.getvalue(), "auto", MAX_PIXELS)
        differences.append(float(np.abs(trained - served).mean()))
    assert np.median(differences) < 0.002 and max(differences) < 0.1, differences
