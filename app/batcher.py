"""The micro-batcher: the one owner of the model, its device and the thread that runs it.

Requests put (image, future) pairs on a bounded asyncio queue and await the future. One loop
takes the first waiting image with every image already queued behind it (up to the batch size),
runs a single forward pass in the model's worker thread (so the event loop never blocks) and
hands each result back to its own future. It never waits for company: an image that finds the
model idle runs at once, alone, as fast as the unbatched path; the images that arrive while a
pass runs are the next batch, so batches grow with the load by themselves. Only under load (the
queue not empty when a pass ends) may the next batch wait up to `max_wait_s` more to fill.

A failed pass fails every future of its batch. The data plane's admission bounds what is queued
here (images and decoder work alike), so the queue never fills. Decoder work (reconstructions,
tweak grids) runs on the same thread, so only one thread ever touches the model, in the
served precision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from app.errors import ModelNotReady
from app.metrics import Metrics
from model.capsnet import CapsNet
from model.nondigit import poses_and_errors
from model.precision import ServingPrecision

log = logging.getLogger("capsnet.serve")
T = TypeVar("T")


@dataclass(frozen=True)
class Inference:
    poses: np.ndarray  # (10, 16) float32
    lengths: np.ndarray  # (10,) float32: the capsule lengths, the class scores
    reconstruction_error: float  # see model.nondigit: how far the winning capsule's redrawing is


@dataclass(frozen=True)
class _Job:
    image: np.ndarray  # (28, 28) float32
    future: asyncio.Future[Inference]
    enqueued: float


class Batcher:
    def __init__(
        self,
        model: CapsNet,
        device: torch.device,
        metrics: Metrics,
        max_batch_size: int = 32,
        max_wait_s: float = 0.0,
        max_queue: int = 256,
        precision: ServingPrecision | None = None,
    ) -> None:
        self.model, self.device, self.metrics = model, device, metrics
        self.precision = precision or ServingPrecision(model, device, "fp32")
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capsnet-model")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="capsnet-batcher")

    async def close(self) -> None:
        """Stops the loop, fails whatever still waits, and lets the running pass finish."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(ModelNotReady("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def infer(self, images: np.ndarray) -> list[Inference]:
        """(N, 28, 28) -> each image's poses and reconstruction error; they may share batches with others."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in images]
        now = time.perf_counter()
        for image, future in zip(images, futures, strict=True):
            self._queue.put_nowait(_Job(image, future, now))
        self.metrics.queue_depth.set(self._queue.qsize())
        return list(await asyncio.gather(*futures))

    async def run(self, work: Callable[[CapsNet, torch.device], T]) -> T:
        """Runs `work(model, device)` on the model's thread under inference mode, in the served precision."""
        start = time.perf_counter()
        result = await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work)
        self.metrics.inference.observe(time.perf_counter() - start)
        return result

    def _call(self, work: Callable[[CapsNet, torch.device], T]) -> T:
        with torch.inference_mode(), self.precision.region():
            result = work(self.model, self.device)
        if self.device.type == "cuda":
            self.metrics.gpu_memory.set(torch.cuda.memory_allocated(self.device))
        return result

    async def _serve(self) -> None:
        under_load = False
        while True:
            jobs = [job for job in await self._collect(under_load) if not job.future.done()]  # drop cancelled
            if jobs:
                await self._process(jobs)
            under_load = not self._queue.empty()

    async def _collect(self, under_load: bool) -> list[_Job]:
        """The first job as soon as it comes and every job queued behind it, up to the batch size.

        Only `under_load` (jobs arrived during the last pass) does it wait up to `max_wait_s` for
        the batch to fill; an idle model never waits.
        """
        batch = [await self._queue.get()]
        self._take_waiting(batch)
        deadline = time.perf_counter() + self.max_wait_s
        while under_load and len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
            self._take_waiting(batch)
        self.metrics.queue_depth.set(self._queue.qsize())
        return batch

    def _take_waiting(self, batch: list[_Job]) -> None:
        while len(batch) < self.max_batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _process(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        for job in jobs:
            self.metrics.queue_wait.observe(started - job.enqueued)
        self.metrics.batch_size.observe(len(jobs))
        try:
            results = await self.run(forward(np.stack([job.image for job in jobs])))
            if len(results) != len(jobs):
                raise RuntimeError(f"the model returned {len(results)} results for {len(jobs)} images")
        except asyncio.CancelledError:
            fail(jobs, ModelNotReady("the service is shutting down"))
            raise
        except Exception as e:
            log.exception("forward pass failed for a batch of %d images", len(jobs))
            fail(jobs, e)
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)


def fail(jobs: list[_Job], error: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)


def forward(images: np.ndarray) -> Callable[[CapsNet, torch.device], list[Inference]]:
    """The poses and, in the same pass, the winning capsule's reconstruction error (the digit check)."""

    def work(model: CapsNet, device: torch.device) -> list[Inference]:
        x = torch.from_numpy(images).unsqueeze(1).to(device)  # (B, 1, 28, 28)
        poses, errors = poses_and_errors(model, x)  # (B, 10, 16), (B,)
        poses = poses.float()
        poses_np, lengths_np = poses.cpu().numpy(), poses.norm(dim=-1).cpu().numpy()
        return [
            Inference(p, n, float(e))
            for p, n, e in zip(poses_np, lengths_np, errors.cpu().numpy(), strict=True)
        ]

    return work
