"""Every bad input gets the one JSON error format and its status, and the server keeps serving."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image


def bomb_png() -> bytes:
    """A valid PNG whose header claims 20000 x 20000 pixels; it compresses to a few kilobytes."""
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, "PNG")
    return out.getvalue()


def ico(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "ICO")
    return out.getvalue()


def encoded(fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 64), 128).save(out, fmt, **options)
    return out.getvalue()


def png_with_a_huge_comment() -> bytes:
    """A valid PNG whose compressed text chunk inflates past what Pillow reads (a few MB of "A")."""
    from PIL import PngImagePlugin

    comment = PngImagePlugin.PngInfo()
    comment.add_text("Comment", "A" * (2 * PngImagePlugin.MAX_TEXT_CHUNK), zip=True)
    return encoded("PNG", pnginfo=comment)


def files(*blobs: bytes) -> list:
    return [("file", (f"{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]


CASES = {
    "empty body": (dict(content=b"", headers={"content-type": "application/json"}), 400, "empty_body"),
    "empty file": (dict(files=files(b"")), 400, "empty_body"),
    "no file field": (dict(files={"other": ("x.png", b"abc", "image/png")}), 400, "invalid_body"),
    "a file beside them under another name": (
        dict(files=[*files(b"abc"), ("image", ("x.png", b"abc", "image/png"))]),
        400,
        "invalid_body",
    ),
    "not an image": (dict(files=files(b"hello, world")), 400, "invalid_image"),
    "bad json": (dict(content=b"{", headers={"content-type": "application/json"}), 400, "invalid_body"),
    "bad base64": (dict(json={"images": ["***"]}), 400, "invalid_body"),
    "wrong json shape": (dict(json={"image": "abc"}), 400, "invalid_body"),
    "plain text": (
        dict(content=b"abc", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    ),
    "ico image": (dict(files=files(ico(np.full((16, 16), 255, np.uint8)))), 415, "unsupported_media_type"),
    "a JPEG cut in its header": (dict(files=files(encoded("JPEG")[:10])), 400, "invalid_image"),
    "a PNG cut in its header": (dict(files=files(encoded("PNG")[:23])), 400, "invalid_image"),
    "a WEBP cut short": (dict(files=files(encoded("WEBP")[:30])), 400, "invalid_image"),
    "a PNG with a huge comment": (dict(files=files(png_with_a_huge_comment())), 400, "invalid_image"),
    "an integer too long for JSON": (
        dict(
            content=b'{"images": [], "n": ' + b"1" * 5000 + b"}", headers={"content-type": "application/json"}
        ),
        400,
        "invalid_body",
    ),
}


@pytest.fixture
def limited(make_client) -> TestClient:
    return make_client(max_upload_bytes=65536, max_images_per_request=3, max_image_pixels=1_000_000)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def assert_still_serving(client: TestClient, png_bytes, digit_image) -> None:
    r = client.post("/v1/predict", files=files(png_bytes(digit_image)))
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


@pytest.mark.parametrize("case", CASES)
def test_bad_uploads_get_a_clear_error(limited: TestClient, case: str, png_bytes, digit_image) -> None:
    kwargs, status, code = CASES[case]
    assert_error(limited.post("/v1/predict", **kwargs), status, code)
    assert_still_serving(limited, png_bytes, digit_image)


def test_a_blank_image_has_no_digit(limited: TestClient, png_bytes, digit_image) -> None:
    assert_error(
        limited.post("/v1/predict", files=files(png_bytes(np.zeros((28, 28), np.uint8)))),
        422,
        "no_digit_found",
    )
    assert_still_serving(limited, png_bytes, digit_image)


def test_an_upload_over_the_limit_is_refused_by_its_content_length(
    limited: TestClient, png_bytes, digit_image
):
    assert_error(limited.post("/v1/predict", files=files(b"x" * 100_000)), 413, "upload_too_large")
    assert_still_serving(limited, png_bytes, digit_image)


def test_a_chunked_upload_is_cut_off_at_the_limit(limited: TestClient, png_bytes, digit_image) -> None:
    def body():
        for _ in range(100):  # 100 KiB, sent without a Content-Length
            yield b" " * 1024

    r = limited.post("/v1/predict", content=body(), headers={"content-type": "application/json"})
    assert_error(r, 413, "upload_too_large")
    assert_still_serving(limited, png_bytes, digit_image)


def test_a_decompression_bomb_is_refused_before_decoding(limited: TestClient, png_bytes, digit_image) -> None:
    r = limited.post("/v1/predict", files=files(bomb_png()))
    assert_error(r, 413, "image_too_large")
    error = r.json()["error"]  # the service's limit, though Pillow's own guard refused it first
    assert error["message"].endswith("the limit is 1000000")
    assert error["details"]["max_pixels"] == 1_000_000
    assert_still_serving(limited, png_bytes, digit_image)


BOUNDARY = "capsnet-test-boundary"


def multipart_body(*blobs: bytes) -> bytes:
    """Two images as a client writes them, the close delimiter last."""
    parts = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + blob
        + b"\r\n"
        for i, blob in enumerate(blobs)
    )
    return parts + f"--{BOUNDARY}--\r\n".encode()


def one_byte_at_a_time(body: bytes) -> Iterator[bytes]:
    for i in range(len(body)):
        yield body[i : i + 1]


@pytest.mark.parametrize("cut", ["before the close delimiter", "inside the last image", "inside its headers"])
def test_a_multipart_upload_cut_short_is_refused_not_answered_for_fewer_images(
    limited: TestClient, cut: str, png_bytes, digit_image
) -> None:
    small = png_bytes(digit_image)
    whole = multipart_body(small, small)
    ends = {
        "before the close delimiter": len(whole) - len(f"--{BOUNDARY}--\r\n"),
        "inside the last image": whole.rindex(small) + len(small) // 2,
        "inside its headers": whole.rindex(b"Content-Type"),
    }
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    r = limited.post("/v1/predict", content=whole[: ends[cut]], headers=headers)
    assert_error(r, 400, "invalid_body")
    assert "cut short" in r.json()["error"]["message"]
    r = limited.post("/v1/predict", content=one_byte_at_a_time(whole), headers=headers)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2, r.text
    assert_still_serving(limited, png_bytes, digit_image)


def test_a_file_field_sent_as_text_is_refused_not_skipped(limited: TestClient, png_bytes, digit_image):
    # curl -F 'file=<digit.png' sends the bytes as a text field: no filename, not a file
    r = limited.post("/v1/predict", data={"file": "iVBORw0KGgo"}, files=files(png_bytes(digit_image)))
    assert_error(r, 400, "invalid_body")
    assert "no filename" in r.json()["error"]["message"] and r.json()["error"]["details"] == {"index": 0}
    assert_still_serving(limited, png_bytes, digit_image)


def test_too_many_images_in_one_request(limited: TestClient, png_bytes, digit_image) -> None:
    small = png_bytes(digit_image)
    assert_error(limited.post("/v1/predict", files=files(*[small] * 4)), 422, "too_many_images")
    assert_error(limited.post("/v1/reconstruct", files=files(small, small)), 422, "too_many_images")
    assert_still_serving(limited, png_bytes, digit_image)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/predict", {"top_k": 11}),
        ("/v1/predict", {"preprocess": "sometimes"}),
        ("/v1/reconstruct", {"scale": 17}),
        ("/v1/reconstruct", {"digit": 10}),
        ("/v1/tweak", {"dims": "0,16"}),
        ("/v1/tweak", {"dims": "a"}),
        ("/v1/tweak", {"steps": 1000}),
        ("/v1/tweak", {"low": 0.5, "high": 0.1}),
        ("/v1/tweak", {"high": 3}),
        ("/v1/tweak", {"scale": 16}),  # a 4928 x 7168 PNG: over the output limit
    ],
)
def test_out_of_range_parameters_are_422(
    client: TestClient, path: str, params: dict, png_bytes, digit_image
) -> None:
    assert_error(
        client.post(path, files=files(png_bytes(digit_image)), params=params), 422, "invalid_parameter"
    )
    assert_still_serving(client, png_bytes, digit_image)


@pytest.mark.parametrize(
    "body",
    [{"digit": 3, "pose": [0.0] * 15}, {"digit": 10, "pose": [0.0] * 16}, {"digit": 1, "pose": [2.0] * 16}],
)
def test_decode_checks_its_body(client: TestClient, body: dict) -> None:
    assert_error(client.post("/v1/decode", json=body), 422, "invalid_parameter")


def test_unknown_ids_and_routes_are_404_in_the_same_format(client: TestClient) -> None:
    assert_error(client.get("/v1/reconstructions/" + "0" * 32 + ".png"), 404, "not_found")
    assert_error(client.get("/v1/inputs/" + "A" * 5000 + ".png"), 404, "not_found")
    assert_error(client.get("/v1/tweaks/not$a~token.png"), 404, "not_found")
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


def test_unknown_v2_routes_answer_in_the_protocols_error_format(client: TestClient) -> None:
    for answer, status in [(client.get("/v2/predict"), 404), (client.post("/v2"), 405)]:
        assert answer.status_code == status and isinstance(answer.json()["error"], str), answer.text
