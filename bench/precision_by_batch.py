"""The service's forward pass (poses and the digit check's redrawing) in fp32 and in bf16, by
batch size, on this machine: where bf16 autocast starts to pay.

    python bench/precision_by_batch.py [--repeats 40]

Each figure is the median time of one pass of the batcher's own `forward`, loaded as
`capsnet-serve` loads the shipped weights (`CAPSNET_PRECISION` fp32, then bf16; torch's threads
as the service sets them).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from app.batcher import forward
from app.loading import load_model
from app.settings import Settings

BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def median_ms(run: Callable[[], object], repeats: int) -> float:
    for _ in range(5):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def pass_ms(precision: str, repeats: int) -> dict[int, float]:
    loaded = load_model(Settings(precision=precision))
    side = loaded.model.config.image_size
    images = np.random.default_rng(0).random((max(BATCH_SIZES), side, side), dtype=np.float32)

    def one_pass(batch: int) -> Callable[[], object]:
        work = forward(images[:batch])

        def run() -> object:
            with torch.inference_mode(), loaded.precision.region(batch):
                return work(loaded.model, loaded.device)

        return run

    return {batch: median_ms(one_pass(batch), repeats) for batch in BATCH_SIZES}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=40, help="timed passes per point (default: 40)")
    args = p.parse_args()
    fp32, bf16 = pass_ms("fp32", args.repeats), pass_ms("bf16", args.repeats)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch in BATCH_SIZES:
        print(
            f"batch {batch:3d}: fp32 {fp32[batch]:7.2f} ms  bf16 {bf16[batch]:7.2f} ms  "
            f"bf16/fp32 {bf16[batch] / fp32[batch]:.2f}"
        )


if __name__ == "__main__":
    main()
