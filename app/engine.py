"""The serving pipeline behind the routes: upload -> preprocess -> batcher -> model -> PNG.

Each preprocessed input gets an id, the hash of its 28x28 pixels, and is kept with its poses in
a bounded cache: the links in a prediction (`/v1/reconstructions/{id}.png`, ...) render from it
later, and sending the same image again skips the forward pass. Rendered PNGs are cached too,
keyed by the id and every parameter that changes the picture.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from app import png
from app.batcher import Batcher
from app.cache import LruCache
from app.errors import NotFound
from app.imaging import Preprocess, prepare
from app.metrics import Metrics
from model.capsnet import CapsNet


@dataclass(frozen=True)
class Sample:
    id: str
    image: np.ndarray  # (28, 28) float32, what the model saw
    poses: np.ndarray  # (10, 16) float32

    @property
    def lengths(self) -> np.ndarray:
        return np.linalg.norm(self.poses, axis=-1)  # (10,) the class scores

    @property
    def digit(self) -> int:
        return int(self.lengths.argmax())


@dataclass(frozen=True)
class InputPng:
    scale: int = 1


@dataclass(frozen=True)
class ReconstructionPng:
    digit: int | None = None  # None: the predicted digit
    scale: int = 1
    side_by_side: bool = False


@dataclass(frozen=True)
class TweakPng:
    digit: int | None = None
    dims: tuple[int, ...] = tuple(range(16))
    steps: int = 11
    low: float = -0.25
    high: float = 0.25
    scale: int = 1


PngParams = InputPng | ReconstructionPng | TweakPng


class Engine:
    def __init__(self, batcher: Batcher, info: dict[str, Any], metrics: Metrics, cache_entries: int) -> None:
        self.batcher, self.info, self.metrics = batcher, info, metrics
        self.samples: LruCache[str, Sample] = LruCache(cache_entries)
        self.pngs: LruCache[tuple[str, PngParams], bytes] = LruCache(cache_entries)

    async def ingest(self, files: list[bytes], preprocess: Preprocess, max_pixels: int) -> list[Sample]:
        """Preprocesses every file (off the event loop), then runs the new ones through the model."""
        start = time.perf_counter()
        images = [await run_in_threadpool(prepare, data, preprocess, max_pixels) for data in files]
        self.metrics.stage.labels("preprocess").observe(time.perf_counter() - start)
        ids = [hashlib.sha256(image.tobytes()).hexdigest()[:32] for image in images]
        found = {sample_id: s for sample_id in ids if (s := self.samples.get(sample_id)) is not None}
        new = {
            sample_id: image for sample_id, image in zip(ids, images, strict=True) if sample_id not in found
        }
        if new:
            poses = await self.batcher.poses(np.stack(list(new.values())))
            for (sample_id, image), pose in zip(new.items(), poses, strict=True):
                found[sample_id] = Sample(sample_id, image, pose)
                self.samples.put(sample_id, found[sample_id])
        return [found[sample_id] for sample_id in ids]

    def sample(self, sample_id: str) -> Sample:
        sample = self.samples.get(sample_id)
        if sample is None:
            raise NotFound(f"no input with id {sample_id}: never sent, or evicted from the cache since")
        return sample

    async def render(self, sample: Sample, params: PngParams) -> bytes:
        """The PNG for `sample` under `params`, from the cache when it was made before."""
        key = (sample.id, params)
        cached = self.pngs.get(key)
        if cached is not None:
            return cached
        pixels = await self._pixels(sample, params)
        data = await self.encode(pixels, params.scale)
        self.pngs.put(key, data)
        return data

    async def decode(self, digit: int, pose: list[float], scale: int) -> bytes:
        """What the decoder draws for one capsule's pose (the other nine are masked anyway)."""
        poses = np.zeros((1, 10, 16), dtype=np.float32)
        poses[0, digit] = pose
        image = await self.batcher.run(decode_poses(poses, digit))
        return await self.encode(image, scale)

    async def encode(self, pixels: np.ndarray, scale: int) -> bytes:
        start = time.perf_counter()
        data = await run_in_threadpool(png.encode, pixels, scale)
        self.metrics.stage.labels("encode").observe(time.perf_counter() - start)
        return data

    async def _pixels(self, sample: Sample, params: PngParams) -> np.ndarray:
        if isinstance(params, InputPng):
            return sample.image
        digit = sample.digit if params.digit is None else params.digit
        if isinstance(params, ReconstructionPng):
            image = await self.batcher.run(decode_poses(sample.poses[None], digit))
            return png.side_by_side(sample.image, image) if params.side_by_side else image
        grid = await self.batcher.run(tweak_grid(sample.poses, digit, params))
        return png.tile(grid)


Work = Callable[[CapsNet, torch.device], np.ndarray]


def decode_poses(poses: np.ndarray, digit: int) -> Work:
    """(1, 10, 16) poses -> the (28, 28) image the decoder draws from capsule `digit`."""

    def work(model: CapsNet, device: torch.device) -> np.ndarray:
        digits = torch.tensor([digit], device=device)
        return model.decoder(torch.from_numpy(poses).to(device), digits)[0, 0].cpu().numpy()

    return work


def tweak_grid(poses: np.ndarray, digit: int, params: TweakPng) -> Work:
    """Figure 4 of the paper for one input: (dims, steps, 28, 28)."""

    def work(model: CapsNet, device: torch.device) -> np.ndarray:
        grid = model.tweak_grid(
            torch.from_numpy(poses).to(device),
            digit,
            list(params.dims),
            params.low,
            params.high,
            params.steps,
        )  # (dims, steps, 1, 28, 28)
        return grid[:, :, 0].cpu().numpy()

    return work
