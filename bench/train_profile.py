"""Training epochs past the first, with Adam's default and fused kernels, and where a step's time goes.

`bench/epoch_time.py` times one epoch after a short warm-up, as a comparison with a peer; this
times several whole epochs of `capsnet-train --amp --compile-mode reduce-overhead` (the same
`train_one_epoch`), so the epochs after the first show the steady state, once with Adam's default
(multi-tensor) update and once with `fused=True`, then profiles a few steps: the kernels with the
most device time and the host calls with the most CPU time.

    python bench/train_profile.py --device cuda [--epochs 3] [--steps 20]
"""

from __future__ import annotations

import argparse
from argparse import Namespace
from functools import partial

import torch
from epoch_time import synchronize, timed  # bench/epoch_time.py, beside this script

from model.capsnet import CapsNet
from model.data import load_mnist, random_offsets
from model.device import resolve_device
from model.training.batches import make_loader, set_epoch
from model.training.compiled import COMPILE_MODES, compile_in_place
from model.training.distributed import Distributed
from model.training.loop import train_one_epoch, train_step
from model.training.objective import TrainingObjective


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per Adam variant (default: 3)")
    p.add_argument("--steps", type=int, default=20, help="profiled steps (default: 20)")
    p.add_argument("--train-subset", type=int, default=None, help="first N training images (default: all)")
    p.add_argument("--compile-mode", choices=COMPILE_MODES, default="reduce-overhead")
    args = p.parse_args()
    device = resolve_device(args.device)
    train = load_mnist().train
    if args.train_subset:
        train = train.head(args.train_subset)
    loop_args = Namespace(seed=0, epochs=args.epochs)
    single = Distributed()
    print(f"device: {device}, torch {torch.__version__}, {len(train)} images, batch 128, {args.compile_mode}")
    for fused in (False, True) if device.type == "cuda" else (False,):  # fused Adam is a CUDA kernel
        torch.manual_seed(0)
        model = CapsNet().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
        objective = TrainingObjective(model, model.config, max_shift=2, amp=True)
        compile_in_place(objective, args.compile_mode)
        loader = make_loader(train, 128, 0, single, device)
        for epoch in range(args.epochs):
            set_epoch(loader, 0, epoch)
            one_epoch = partial(train_one_epoch, objective, loader, optimizer, device, loop_args)
            seconds = timed(partial(one_epoch, epoch, single), device)
            print(f"Adam fused={fused}: epoch {epoch + 1} {seconds:.3f} s", flush=True)
    images, labels = next(iter(loader))
    offsets = random_offsets(len(labels), objective.max_shift).to(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        for _ in range(args.steps):
            train_step(objective, optimizer, images, offsets, labels)
        synchronize(device)
    table = profile.key_averages()
    if device.type == "cuda":
        print(table.table(sort_by="self_cuda_time_total", row_limit=25))
    print(table.table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
