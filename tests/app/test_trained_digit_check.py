"""With the shipped weights and the digit check in their card: a held-out MNIST test digit is
answered as a digit; a printed letter "A" (a sans one at any size too, which a model trained on
digits alone reads as a confident 4), a square, a filled disc and a crop of a photograph are
flagged.

The inputs come from the same generators as `bench/nondigit_report.py` (fonts from Debian's
fonts-dejavu-core, which `scripts/ensure-fonts.sh` installs; photos bundled in scikit-image).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data as sample_images

from bench.nondigit_sets import DEJAVU, encode, letter_image, load_font, shape_image
from model.checkpoint import read_model_card
from model.data import Mnist
from model.nondigit import DigitRule

MEASUREMENT_DIGIT = 1  # an odd-numbered test image: capsnet-calibrate never set a threshold on it


@pytest.fixture
def trained_client(make_client, trained_weights):
    assert DigitRule.from_card(read_model_card(trained_weights)) is not None, (
        "the shipped model card has no digit check: run capsnet-calibrate"
    )
    return make_client(weights=trained_weights)


def verdicts(client, files: list[bytes]) -> list[bool]:
    uploads = [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)]
    r = client.post("/v1/predict", files=uploads)
    assert r.status_code == 200, r.text
    return [p["is_digit"] for p in r.json()["predictions"]]


def test_a_held_out_mnist_digit_is_a_digit(trained_client, mnist: Mnist) -> None:
    digit = encode(Image.fromarray(mnist.test.images[MEASUREMENT_DIGIT]))
    assert verdicts(trained_client, [digit]) == [True]


def test_a_letter_a_square_and_a_photo_crop_are_not_digits(trained_client) -> None:
    letter = encode(letter_image("A", load_font(DEJAVU / "DejaVuSerif.ttf", 100)))
    square = encode(shape_image("square", np.random.default_rng(1)))
    photo = encode(Image.fromarray(sample_images.astronaut()[:200, :200]), "JPEG", quality=85)
    assert verdicts(trained_client, [letter, square, photo]) == [False, False, False]


@pytest.mark.parametrize("face", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"])
def test_a_plain_sans_a_is_not_a_digit_at_any_size(trained_client, face: str) -> None:
    pictures = []
    for side in (28, 64, 128, 280, 500):
        picture = Image.new("L", (side, side), 255)
        font = ImageFont.truetype(str(DEJAVU / face), int(side * 0.7))
        ImageDraw.Draw(picture).text((side / 2, side / 2), "A", font=font, fill=0, anchor="mm")
        pictures.append(encode(picture))
    assert verdicts(trained_client, pictures) == [False] * len(pictures)


def test_a_filled_disc_redrawn_as_a_heavy_zero_is_not_a_digit(trained_client) -> None:
    """The decoder redraws it closely and its poses are a 0's: only its ink is too deep for a pen."""
    disc = encode(shape_image("disc", np.random.default_rng(2)))
    r = trained_client.post(
        "/v1/predict", files={"file": ("disc.png", disc, "image/png")}, params={"reject_non_digits": "true"}
    )
    assert r.status_code == 422, r.text
    [detail] = r.json()["error"]["details"]
    assert detail["stroke_depth"] > detail["max_stroke_depth"]
