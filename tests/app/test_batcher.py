"""The micro-batcher: concurrent requests share forward passes; failures are contained."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.batcher import Batcher
from app.metrics import Metrics
from model.capsnet import CapsNet, CapsNetConfig


@pytest.fixture(scope="module")
def model() -> CapsNet:
    torch.manual_seed(0)
    return CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()


def images(n: int) -> np.ndarray:
    return np.random.default_rng(n).random((n, 28, 28), dtype=np.float32)


async def with_batcher(model: CapsNet, body, **kwargs):
    batcher = Batcher(model, torch.device("cpu"), Metrics(), **kwargs)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.close()


def test_concurrent_callers_share_one_forward_pass_and_get_their_own_results(model: CapsNet) -> None:
    inputs = images(6)
    passes: list[int] = []
    forward = model.poses

    def counting(x: torch.Tensor) -> torch.Tensor:
        passes.append(len(x))
        return forward(x)

    async def body(batcher: Batcher):
        return await asyncio.gather(*(batcher.infer(inputs[i : i + 1]) for i in range(6)))

    model.poses = counting  # type: ignore[method-assign]
    try:
        results = asyncio.run(with_batcher(model, body, max_batch_size=8, max_wait_s=0.2))
    finally:
        del model.poses
    assert passes == [6]
    with torch.inference_mode():
        expected = model.poses(torch.from_numpy(inputs).unsqueeze(1)).numpy()
    assert np.allclose(np.stack([r.poses for rs in results for r in rs]), expected, atol=1e-5)


def test_a_failed_batch_fails_every_caller_and_the_next_batch_still_runs(model: CapsNet) -> None:
    forward = model.poses
    calls = []

    def fail_once(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return forward(x)

    async def body(batcher: Batcher):
        first = await asyncio.gather(*(batcher.infer(images(1)) for _ in range(3)), return_exceptions=True)
        return first, await batcher.infer(images(2))

    model.poses = fail_once  # type: ignore[method-assign]
    try:
        first, after = asyncio.run(with_batcher(model, body, max_batch_size=8, max_wait_s=0.2))
    finally:
        del model.poses
    assert all(isinstance(e, RuntimeError) for e in first)
    assert [r.poses.shape for r in after] == [(10, 16), (10, 16)]


def metric(client: TestClient, name: str) -> dict[str, float]:
    """The samples of one metric family from /metrics, by sample name (and `le` for buckets)."""
    [family] = [f for f in text_string_to_metric_families(client.get("/metrics").text) if f.name == name]
    return {s.name + (f"[{s.labels['le']}]" if "le" in s.labels else ""): s.value for s in family.samples}


def test_http_requests_that_wait_on_a_running_pass_share_the_next_one(
    make_client, png_bytes, digit_image
) -> None:
    client: TestClient = make_client(max_batch_size=16)
    model = client.app.state.plane.batcher.model
    forward, passes, release = model.poses, [], threading.Event()

    def held_first_pass(x: torch.Tensor) -> torch.Tensor:
        passes.append(len(x))
        if len(passes) == 1:
            release.wait(timeout=30)
        return forward(x)

    # preprocess=none: centring would make the shifted images one input, served from the cache
    uploads = [png_bytes(np.roll(digit_image, shift, axis=1)) for shift in range(-4, 4)]

    def post(data: bytes) -> int:
        files = {"file": ("d.png", data, "image/png")}
        return client.post("/v1/predict", files=files, params={"preprocess": "none"}).status_code

    model.poses = held_first_pass  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(len(uploads)) as pool:
            first = pool.submit(post, uploads[0])
            while not passes:  # the first request holds the model
                time.sleep(0.005)
            rest = [pool.submit(post, data) for data in uploads[1:]]
            while metric(client, "capsnet_queue_depth")["capsnet_queue_depth"] < len(rest):
                time.sleep(0.005)
            release.set()
            statuses = [first.result(), *(f.result() for f in rest)]
    finally:
        release.set()
        del model.poses
    assert statuses == [200] * len(uploads)
    assert passes == [1, len(rest)]
    batches = metric(client, "capsnet_batch_size")
    assert batches["capsnet_batch_size_count"] == 2 and batches["capsnet_batch_size_sum"] == len(uploads)


def test_an_image_that_finds_the_model_idle_runs_at_once(model: CapsNet) -> None:
    """The wait is far longer than the timeout: only a batcher that never waits when idle answers."""

    async def body(batcher: Batcher):
        return [await asyncio.wait_for(batcher.infer(images(1)), timeout=10) for _ in range(2)]

    results = asyncio.run(with_batcher(model, body, max_batch_size=8, max_wait_s=60))
    assert [[r.poses.shape for r in rs] for rs in results] == [[(10, 16)]] * 2


def test_images_that_arrive_during_a_pass_form_the_next_batch(model: CapsNet) -> None:
    forward = model.poses
    passes: list[int] = []
    release = threading.Event()

    def held_first_pass(x: torch.Tensor) -> torch.Tensor:
        passes.append(len(x))
        if len(passes) == 1:
            release.wait(timeout=10)
        return forward(x)

    async def body(batcher: Batcher):
        first = asyncio.ensure_future(batcher.infer(images(1)))
        while not passes:  # the first image is in its pass
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.infer(images(1))) for _ in range(5)]
        await asyncio.sleep(0.05)  # all five are queued behind the running pass
        release.set()
        return await asyncio.gather(first, *rest)

    model.poses = held_first_pass  # type: ignore[method-assign]
    try:
        results = asyncio.run(with_batcher(model, body, max_batch_size=8))
    finally:
        del model.poses
    assert passes == [1, 5] and len(results) == 6
