"""Prints the encoder's speed (images -> poses) under PyTorch and under ONNX Runtime, same run.

The shipped weights on the CPU at batch 1 and 32 (the service's largest batch), each runtime on
as many threads as torch uses: PyTorch in fp32, PyTorch under bf16 autocast (what
`CAPSNET_PRECISION=auto` serves on CPUs with native bf16; left out on others) and ONNX Runtime
in fp32 on the exported graph. The runtimes are timed in alternating rounds, so a neighbour's
load falls on all of them alike; each figure is the median round, and each ratio is that
runtime's rate over PyTorch fp32's.

    python bench/onnx_speed.py [--weights ...] [--seconds 2] [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model.capsnet import CapsNet
from model.checkpoint import load_weights
from model.export import to_onnx
from model.precision import Precision, autocast, cpu_has_native_bf16
from model.signature import image_input

BATCH_SIZES = [1, 32]
CPU = torch.device("cpu")


def images_per_second(step: Callable[[], object], batch: int, seconds: float) -> float:
    step()  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        step()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def torch_step(model: CapsNet, images: np.ndarray, precision: Precision) -> Callable[[], object]:
    tensor = torch.from_numpy(images)

    def step() -> object:
        with torch.inference_mode(), autocast(CPU, precision):
            return model.poses(tensor)

    return step


def onnxruntime_step(session: ort.InferenceSession, images: np.ndarray) -> Callable[[], object]:
    def step() -> object:
        return session.run(["poses"], {"images": images})

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=Path("weights/capsnet-mnist.safetensors"))
    p.add_argument("--seconds", type=float, default=2.0, help="time per round (default: 2)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per runtime (default: 5)")
    p.add_argument("--threads", type=int, default=None, help="threads per runtime (default: torch's)")
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    model = load_weights(args.weights, CPU)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same threads for both runtimes
    session = ort.InferenceSession(
        to_onnx(model, encoder_only=True).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    print(
        f"cpu: {platform.processor() or platform.machine()}, torch {torch.__version__} "
        f"and onnxruntime {ort.__version__}, {torch.get_num_threads()} threads each"
    )
    for batch in BATCH_SIZES:
        images = np.random.default_rng(0).random((batch, *image_input(model.config).shape), dtype=np.float32)
        steps = {"torch fp32": torch_step(model, images, "fp32")}
        if cpu_has_native_bf16():
            steps["torch bf16"] = torch_step(model, images, "bf16")
        steps["onnxruntime fp32"] = onnxruntime_step(session, images)
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                rates[name].append(images_per_second(step, batch, args.seconds))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        base = medians["torch fp32"]
        figures = ", ".join(f"{name} {rate:7.1f}/s ({rate / base:.2f}x)" for name, rate in medians.items())
        print(f"batch {batch:>2}: {figures}")


if __name__ == "__main__":
    main()
