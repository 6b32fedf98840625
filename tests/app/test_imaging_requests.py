"""In a request with many images, an image that fails says which one it is."""

from __future__ import annotations

import base64

import numpy as np


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
