"""Start-up: the service serves in the precision it is set to, says so, and freezes its start-up heap."""

from __future__ import annotations

import gc

import numpy as np


def test_model_info_names_the_precision_and_bf16_predicts_like_fp32(
    make_client, png_bytes, digit_image
) -> None:
    files = {"file": ("d.png", png_bytes(digit_image), "image/png")}
    scores = {}
    for precision in ("fp32", "bf16"):
        client = make_client(precision=precision)
        assert client.get("/v1/model").json()["precision"] == precision
        [p] = client.post("/v1/predict", files=files).json()["predictions"]
        scores[precision] = np.array(p["scores"])
    assert np.allclose(scores["bf16"], scores["fp32"], atol=2e-2)


def test_the_start_up_heap_is_frozen_out_of_the_collector(client) -> None:
    assert gc.get_freeze_count() > 10_000
