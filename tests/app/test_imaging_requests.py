"""In a request with many images, an image that fails says which one it is."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image


def test_a_blank_image_among_several_names_its_index_and_filename(client, png_bytes, digit_image) -> None:
    blank = png_bytes(np.full((64, 64), 255, np.uint8))
    files = [
        ("file", ("one.png", png_bytes(digit_image), "image/png")),
        ("file", ("blank.png", blank, "image/png")),
        ("file", ("three.png", png_bytes(digit_image), "image/png")),
    ]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "no_digit_found"
    assert error["details"] == {"index": 1, "filename": "blank.png"}
    assert "blank.png" in error["message"] and "no digit found" in error["message"]


def test_an_undecodable_image_in_json_is_named_by_its_position(client, png_bytes, digit_image) -> None:
    images = [base64.b64encode(png_bytes(digit_image)).decode(), base64.b64encode(b"not an image").decode()]
    r = client.post("/v1/predict", json={"images": images})
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"index": 1, "filename": "images[1]"}


def float_tiff(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.float32)).save(out, format="TIFF")
    return out.getvalue()


@pytest.mark.parametrize("preprocess", ["none", "auto"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_image_with_a_pixel_that_is_no_number_is_invalid(
    client, digit_image, preprocess: str, bad: float
) -> None:
    """A 32-bit float TIFF may hold NaN or infinity; fed to the model, one such pixel makes every
    output NaN. It is the client's file that is wrong: a 400 that says so, never a 500."""
    pixels = digit_image / 255.0
    pixels[0, 0] = bad
    files = [("file", ("scan.tif", float_tiff(pixels), "image/tiff"))]
    r = client.post(f"/v1/predict?preprocess={preprocess}", files=files)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_image" and "not a number" in error["message"]
    assert error["details"] == {"index": 0, "filename": "scan.tif"}
