"""Prints CapsNet training and inference throughput (images/s) on the current device.

Training: 2-pixel shifts + forward + margin/reconstruction loss + backward + Adam step at the
training batch size. Inference: `class_scores` under `torch.inference_mode` for batch sizes 1 to 256.

    python bench/model_speed.py [--device auto] [--seconds 3] [--compile] [--amp]

`--amp` times training under bf16 autocast, as `capsnet-train --amp` runs it (the convolutions
in bf16, the capsules fp32); inference here is fp32 (`bench/precision_by_batch.py` times the
service's own pass in fp32 and in bf16).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from model.capsnet import CapsNet
from model.data import random_offsets
from model.device import resolve_device
from model.training.loop import train_step
from model.training.objective import TrainingObjective

BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step: Callable[[], None], batch: int, seconds: float, device: torch.device) -> float:
    """Runs `step` for about `seconds` after one warm-up call."""
    step()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        step()
        calls += 1
    synchronize(device)
    return calls * batch / (time.perf_counter() - start)


def training_step(model: CapsNet, batch: int, device: torch.device, amp: bool) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters())
    objective = TrainingObjective(model, model.config, max_shift=2, amp=amp)
    images = torch.rand(batch, 1, 28, 28, device=device)
    offsets = random_offsets(batch, max_shift=2).to(device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        train_step(objective, optimizer, images, offsets, labels)

    return step


def inference_step(model: CapsNet, batch: int, device: torch.device) -> Callable[[], None]:
    images = torch.rand(batch, 1, 28, 28, device=device)

    def step() -> None:
        with torch.inference_mode():
            model.class_scores(images)

    return step


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default: 3)")
    p.add_argument("--train-batch", type=int, default=128, help="training batch size (default: 128)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default: off)")
    p.add_argument("--amp", action="store_true", help="train under bf16 autocast (default: off)")
    args = p.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = CapsNet().to(device)
    if args.compile:
        model.compile()
    print(
        f"device: {device} ({describe(device)}), torch {torch.__version__}, "
        f"compile={args.compile}, amp={args.amp}"
    )
    model.train()
    train_rate = images_per_second(
        training_step(model, args.train_batch, device, args.amp), args.train_batch, args.seconds, device
    )
    print(f"training   batch {args.train_batch:>3}: {train_rate:8.1f} images/s")
    model.eval()
    for batch in BATCH_SIZES:
        rate = images_per_second(inference_step(model, batch, device), batch, args.seconds, device)
        print(f"inference  batch {batch:>3}: {rate:8.1f} images/s")


if __name__ == "__main__":
    main()
