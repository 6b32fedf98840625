"""The PNG endpoints decode to the sizes they promise; linked PNGs render until evicted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def upload(png_bytes, image) -> dict:
    return {"file": ("d.png", png_bytes(image), "image/png")}


def test_reconstruct_is_28_times_scale_square_or_side_by_side(
    client: TestClient, png_bytes, digit_image, png_size
):
    r = client.post("/v1/reconstruct", files=upload(png_bytes, digit_image))
    assert (
        r.status_code == 200 and r.headers["content-type"] == "image/png" and png_size(r.content) == (28, 28)
    )
    r = client.post("/v1/reconstruct", files=upload(png_bytes, digit_image), params={"scale": 3, "digit": 4})
    assert png_size(r.content) == (84, 84)
    r = client.post(
        "/v1/reconstruct", files=upload(png_bytes, digit_image), params={"scale": 2, "side_by_side": 1}
    )
    assert png_size(r.content) == (112, 56)


def test_tweak_grid_has_a_row_per_dim_and_a_column_per_step(
    client: TestClient, png_bytes, digit_image, png_size
):
    r = client.post("/v1/tweak", files=upload(png_bytes, digit_image))
    assert r.status_code == 200 and png_size(r.content) == (11 * 28, 16 * 28)
    params = [
        ("dims", "0,3"),
        ("dims", "5"),
        ("steps", "5"),
        ("scale", "2"),
        ("low", "-0.5"),
        ("high", "0.5"),
    ]
    r = client.post("/v1/tweak", files=upload(png_bytes, digit_image), params=params)
    assert png_size(r.content) == (5 * 56, 3 * 56)


def test_decode_draws_an_edited_pose(client: TestClient, png_size) -> None:
    r = client.post("/v1/decode", json={"digit": 3, "pose": [0.1] * 16}, params={"scale": 4})
    assert r.status_code == 200 and png_size(r.content) == (112, 112)


def test_links_in_a_prediction_render_with_parameters(
    client: TestClient, png_bytes, digit_image, png_size
) -> None:
    [p] = client.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    assert png_size(client.get(p["links"]["input"], params={"scale": 2}).content) == (56, 56)
    assert png_size(client.get(p["links"]["reconstruction"]).content) == (28, 28)
    assert png_size(client.get(p["links"]["tweak"], params={"dims": "1,2", "steps": 3}).content) == (84, 56)
    posted = client.post("/v1/reconstruct", files=upload(png_bytes, digit_image)).content
    assert client.get(p["links"]["reconstruction"]).content == posted


def test_links_render_after_the_caches_forgot_them(make_client, png_bytes, digit_image, png_size) -> None:
    client = make_client(sample_cache_bytes=0, png_cache_bytes=0)
    [first] = client.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    client.post("/v1/predict", files=upload(png_bytes, digit_image.T.copy()))
    r = client.get(first["links"]["reconstruction"])
    assert r.status_code == 200 and png_size(r.content) == (28, 28)


@pytest.mark.parametrize("token", ["AQ", "AXic", "A" * 40, "not-base64-at-all", "Ag" + "A" * 30, "A" * 2000])
def test_a_token_this_service_did_not_make_is_404(client: TestClient, token: str) -> None:
    r = client.get(f"/v1/reconstructions/{token}.png")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_link_from_one_replica_renders_on_another(make_client, png_bytes, digit_image, png_size) -> None:
    first, second = make_client(), make_client()
    [p] = first.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    for link, size in (("input", (28, 28)), ("reconstruction", (28, 28)), ("tweak", (11 * 28, 16 * 28))):
        on_first, on_second = first.get(p["links"][link]), second.get(p["links"][link])
        assert on_second.status_code == 200 and png_size(on_second.content) == size
        assert on_second.content == on_first.content


def test_the_png_cache_stays_within_its_byte_bound(make_client, png_bytes, digit_image) -> None:
    bound = 200_000
    client = make_client(png_cache_bytes=bound)
    [p] = client.post("/v1/predict", files=upload(png_bytes, digit_image)).json()["predictions"]
    cache = client.app.state.plane.pngs
    for scale in range(1, 9):
        assert client.get(p["links"]["tweak"], params={"scale": scale}).status_code == 200
        assert 0 < cache.bytes <= bound
    assert len(cache) < 8
