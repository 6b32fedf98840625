"""The service's forward pass (poses and the digit check's redrawing) by batch size on this
machine: fp32, bf16 by plain autocast, and bf16 as the service serves it.

    python bench/precision_by_batch.py [--repeats 40]

Each figure is the median time of one pass of the batcher's own `forward` over rounds that take
turns, the shipped weights loaded as `capsnet-serve` loads them (torch's threads as the service
sets them): with `CAPSNET_PRECISION=fp32`, that model again in an autocast region (its
convolutions' weights cast, then reordered by oneDNN, on every pass), and with
`CAPSNET_PRECISION=bf16` (on a CPU with bf16 instructions, convolutions packed once at load time:
`model.packed_conv`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch

from app.batcher import forward
from app.loading import LoadedModel, load_model
from app.settings import Settings
from model.precision import autocast

BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def interleaved_medians_ms(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Each run's median time over `repeats` rounds, one pass of every run per round, so that a
    noisy neighbour's load falls on all of them alike."""
    for run in runs.values():
        for _ in range(3):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def one_pass(
    loaded: LoadedModel, region: Callable[[], AbstractContextManager[None]], images: np.ndarray
) -> Callable[[], object]:
    work = forward(images)

    def run() -> object:
        with torch.inference_mode(), region():
            return work(loaded.model, loaded.device)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=40, help="timed passes per point (default: 40)")
    args = p.parse_args()
    fp32, served = load_model(Settings(precision="fp32")), load_model(Settings(precision="bf16"))
    side = fp32.model.config.image_size
    images = np.random.default_rng(0).random((max(BATCH_SIZES), side, side), dtype=np.float32)
    variants = {
        "fp32": (fp32, fp32.precision.region),
        "bf16 autocast": (fp32, lambda: autocast(fp32.device, "bf16")),
        f"bf16 served, {served.precision.describe()}": (served, served.precision.region),
    }
    by_batch = {
        batch: interleaved_medians_ms(
            {name: one_pass(loaded, region, images[:batch]) for name, (loaded, region) in variants.items()},
            args.repeats,
        )
        for batch in BATCH_SIZES
    }
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; ms per pass, (x fp32's time)")
    for batch in BATCH_SIZES:
        ms = by_batch[batch]
        figures = "  ".join(f"{name} {ms[name]:7.2f} ({ms[name] / ms['fp32']:.2f})" for name in variants)
        print(f"batch {batch:3d}: {figures}")


if __name__ == "__main__":
    main()
