"""The data plane: the one call every transport makes, and the only code that knows the batcher,
the caches and the limits (KServe's `DataPlane`).

A transport (the /v1 routes, or any other protocol) turns its wire format into one of these calls:
`infer` (uploaded files) or `infer_pixels` (tensors) for poses and scores, `reconstructions` for
the decoder's drawings as tensors, `render_upload`, `render_link` and `decode` for PNGs. Each call
first computes what it will cost from its parameters and the model's config (a 4xx if it could
never be afforded), then passes the one admission door (503 + Retry-After if it cannot be afforded
now), and only then decodes images, queues for the model and encodes. Inputs are quantised to 8
bits, named by the hash of their pixels and kept with their poses in a byte-bounded cache, so
repeats skip the model; rendered PNGs are cached the same way, keyed by the input and every
parameter that changes the picture.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from app import links, png
from app.admission import Admission
from app.batcher import Batcher, Inference
from app.cache import LruCache
from app.errors import InvalidParameter, NotADigit, ServiceError, TooManyImages
from app.imaging import Layout, Preprocess, prepare
from app.metrics import Metrics, watch_admission
from app.renders import DecodePng, Geometry, InputPng, PngParams, ReconstructionPng, TweakPng
from app.settings import Settings
from app.uploads import Upload
from model.capsnet import CapsNet
from model.nondigit import DigitRule, stroke_depths


@dataclass(frozen=True)
class Sample:
    key: str  # the hash of `image`: the caches' key
    image: np.ndarray  # (28, 28) float32 on 256 levels, what the model saw
    poses: np.ndarray  # (10, 16) float32
    lengths: np.ndarray  # (10,) float32: the capsule lengths, the class scores
    reconstruction_error: float  # model.nondigit's unit: summed squared pixel error
    is_digit: bool | None  # None: the model card has no calibrated digit check

    @property
    def digit(self) -> int:
        return int(self.lengths.argmax())

    @cached_property
    def token(self) -> str:
        """The input itself, compactly: its id in responses and in PNG links any replica can render."""
        return links.token(self.image)


class DataPlane:
    def __init__(
        self,
        batcher: Batcher,
        info: dict[str, Any],
        digit_rule: DigitRule | None,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self.batcher, self.info, self.metrics = batcher, info, metrics
        self.geometry = Geometry.of(batcher.model.config, settings.max_output_pixels)
        self.max_image_pixels = settings.max_image_pixels
        self.layout = Layout.of_model(info)  # the input size and digit box the model was trained on
        self.admission = Admission(images=settings.max_queue, pixels=settings.max_render_pixels)
        watch_admission(metrics, self.admission)
        self.samples: LruCache[str, Sample] = LruCache(settings.sample_cache_bytes, sample_bytes)
        self.pngs: LruCache[tuple[str, PngParams], bytes] = LruCache(settings.png_cache_bytes, len)
        self.digit_rule = digit_rule

    async def infer(self, files: list[Upload], preprocess: Preprocess) -> list[Sample]:
        """Encoded images -> their samples (poses and scores), in order."""
        async with self.admission.admit(images=len(files)):
            return await self._samples(await self._prepare(files, preprocess))

    async def infer_pixels(self, pixels: np.ndarray) -> list[Sample]:
        """(N, side, side) floats in [0, 1], already preprocessed -> their samples, in order."""
        side = self.geometry.side
        if pixels.ndim != 3 or pixels.shape[1:] != (side, side) or not np.isfinite(pixels).all():
            raise InvalidParameter(f"expected finite images of shape (N, {side}, {side}), got {pixels.shape}")
        async with self.admission.admit(images=len(pixels)):
            return await self._samples(links.quantise(pixels))

    async def render_upload(self, files: list[Upload], preprocess: Preprocess, params: PngParams) -> bytes:
        """One uploaded image -> the PNG `params` describe."""
        pixels = self.geometry.check(params)
        if len(files) != 1:
            raise TooManyImages(f"this endpoint takes one image, got {len(files)}")
        async with self.admission.admit(images=1, pixels=pixels):
            [sample] = await self._samples(await self._prepare(files, preprocess))
            return await self._render(sample, params)

    async def render_link(self, token: str, params: PngParams) -> bytes:
        """A link's token (made by any replica) -> the PNG `params` describe."""
        pixels = self.geometry.check(params)
        image = links.image(token, self.geometry.side)
        cached = self.pngs.get((content_id(image), params))
        if cached is not None:
            return cached
        async with self.admission.admit(images=1, pixels=pixels):
            [sample] = await self._samples(image[None])
            return await self._render(sample, params)

    async def decode(self, params: DecodePng) -> bytes:
        """What the decoder draws for one capsule's pose (the other capsules are masked anyway)."""
        pixels = self.geometry.check(params)
        async with self.admission.admit(pixels=pixels):
            poses = np.zeros((1, self.geometry.classes, self.geometry.pose_dims), dtype=np.float32)
            poses[0, params.digit] = params.pose
            image = await self.batcher.run(decode_poses(poses, params.digit))
            return await self._encode(image, params.scale)

    async def reconstructions(self, samples: list[Sample]) -> np.ndarray:
        """The decoder's drawing of each sample's predicted digit: (N, side, side) in [0, 1]."""
        async with self.admission.admit(pixels=len(samples) * self.geometry.side**2):
            return await self.batcher.run(decode_predicted(np.stack([s.poses for s in samples])))

    async def _prepare(self, files: list[Upload], preprocess: Preprocess) -> np.ndarray:
        """Decodes and preprocesses off the event loop -> (N, side, side) on 256 levels."""
        start = time.perf_counter()
        images = [
            await run_in_threadpool(self._prepare_one, index, upload, preprocess)
            for index, upload in enumerate(files)
        ]
        self.metrics.preprocess.observe(time.perf_counter() - start)
        return np.stack(images)

    def _prepare_one(self, index: int, upload: Upload, preprocess: Preprocess) -> np.ndarray:
        """One file's quantised model input; an error names the file, so one bad image among many is found."""
        try:
            return links.quantise(prepare(upload.data, preprocess, self.max_image_pixels, self.layout))
        except ServiceError as e:
            raise e.about_image(index, upload.name) from e

    async def _samples(self, images: np.ndarray) -> list[Sample]:
        """Quantised images -> samples; only those not in the cache go through the model."""
        keys = [content_id(image) for image in images]
        found = {key: s for key in keys if (s := self.samples.get(key)) is not None}
        new = {key: image for key, image in zip(keys, images, strict=True) if key not in found}
        if new:
            unseen = np.stack(list(new.values()))
            results = await self.batcher.infer(unseen)
            for (key, image), result, verdict in zip(
                new.items(), results, self.verdicts(unseen, results), strict=True
            ):
                found[key] = Sample(
                    key, image, result.poses, result.lengths, result.reconstruction_error, verdict
                )
                self.samples.put(key, found[key])
        samples = [found[key] for key in keys]
        self.metrics.non_digits.inc(sum(sample.is_digit is False for sample in samples))
        return samples

    def verdicts(self, images: np.ndarray, results: list[Inference]) -> list[bool | None]:
        """The card's digit check on a whole batch of inputs and their outputs at once (None when
        the card has none)."""
        if self.digit_rule is None:
            return [None] * len(results)
        poses = np.stack([r.poses for r in results])
        errors = np.array([r.reconstruction_error for r in results])
        return [bool(v) for v in self.digit_rule.judge(images, poses, errors)]

    def refuse_non_digits(self, samples: list[Sample]) -> None:
        """`reject_non_digits=true`: a 422 naming every input the digit check flagged."""
        flagged = [(index, s) for index, s in enumerate(samples) if s.is_digit is False]
        if not flagged or self.digit_rule is None:
            return
        rule = self.digit_rule
        raise NotADigit(
            f"{len(flagged)} of {len(samples)} images do not look like a digit to the model",
            [
                {
                    "index": index,
                    "id": s.token,
                    "reconstruction_error": s.reconstruction_error,
                    "max_reconstruction_error": rule.max_reconstruction_error,
                    "pose_distance": float(rule.pose_statistics.distances(s.poses[None])[0]),
                    "max_pose_distance": rule.max_pose_distance,
                    "capsule_length": float(s.lengths.max()),
                    "min_capsule_length": rule.min_capsule_length,
                    "stroke_depth": int(stroke_depths(s.image[None])[0]),
                    "max_stroke_depth": rule.max_stroke_depth,
                }
                for index, s in flagged
            ],
        )

    async def _render(self, sample: Sample, params: PngParams) -> bytes:
        key = (sample.key, params)
        cached = self.pngs.get(key)
        if cached is not None:
            return cached
        data = await self._encode(await self._pixels(sample, params), params.scale)
        self.pngs.put(key, data)
        return data

    async def _pixels(self, sample: Sample, params: PngParams) -> np.ndarray:
        if isinstance(params, InputPng):
            return sample.image
        digit = sample.digit if params.digit is None else params.digit
        if isinstance(params, ReconstructionPng):
            image = await self.batcher.run(decode_poses(sample.poses[None], digit))
            return png.side_by_side(sample.image, image) if params.side_by_side else image
        assert isinstance(params, TweakPng)
        grid = await self.batcher.run(tweak_grid(sample.poses, digit, params))
        return png.tile(grid)

    async def _encode(self, pixels: np.ndarray, scale: int) -> bytes:
        start = time.perf_counter()
        data = await run_in_threadpool(png.encode, pixels, scale)
        self.metrics.encode.observe(time.perf_counter() - start)
        return data


def content_id(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()[:32]


def sample_bytes(sample: Sample) -> int:
    arrays = sample.image.nbytes + sample.poses.nbytes + sample.lengths.nbytes
    return arrays + 256  # and the objects around them


Work = Callable[[CapsNet, torch.device], np.ndarray]


def decode_poses(poses: np.ndarray, digit: int) -> Work:
    """(1, 10, 16) poses -> the (28, 28) image the decoder draws from capsule `digit`."""

    def work(model: CapsNet, device: torch.device) -> np.ndarray:
        digits = torch.tensor([digit], device=device)
        return model.decoder(torch.from_numpy(poses).to(device), digits)[0, 0].float().cpu().numpy()

    return work


def decode_predicted(poses: np.ndarray) -> Work:
    """(N, 10, 16) poses -> (N, 28, 28): each drawn from its longest capsule, as `Sample.digit`."""

    def work(model: CapsNet, device: torch.device) -> np.ndarray:
        return model.reconstruct(torch.from_numpy(poses).to(device))[:, 0].float().cpu().numpy()

    return work


def tweak_grid(poses: np.ndarray, digit: int, params: TweakPng) -> Work:
    """Figure 4 of the paper for one input: (dims, steps, 28, 28); `dims=None` is every dimension."""
    dims = None if params.dims is None else list(params.dims)

    def work(model: CapsNet, device: torch.device) -> np.ndarray:
        grid = model.tweak_grid(
            torch.from_numpy(poses).to(device), digit, dims, params.low, params.high, params.steps
        )  # (dims, steps, 1, 28, 28)
        return grid[:, :, 0].float().cpu().numpy()

    return work
