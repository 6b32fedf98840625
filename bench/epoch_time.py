"""Prints the time of one 60k-image training epoch: this CapsNet beside a peer's, same device.

This model runs through the real training loop (`model.training.loop.train_one_epoch`: 2-pixel
shifts, margin + reconstruction loss, Adam) in fp32, then with bf16 autocast and `torch.compile`
of the whole step's forward as `capsnet-train --amp --compile` runs it. The peer is
XifengGuo/CapsNet-Pytorch, the most used PyTorch CapsNet: its `CapsuleNet` and `caps_loss` are
loaded from a checkout given with `--peer`, with its `.cuda()` calls pointed at the input's device
and its unused torchvision import dropped, nothing else changed, and trained with Adam on the same
device-resident, shifted batches. Every variant gets warm-up steps (and its compilation) before
its timed epochs, at the same batch size; the last timed epoch is the one reported, as the steady
state a long run sees.

    python bench/epoch_time.py --device cuda --peer /path/to/CapsNet-Pytorch [--compile-mode reduce-overhead]
    python bench/epoch_time.py --device cpu --images 512     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import types
from argparse import Namespace
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from model.capsnet import CapsNet
from model.data import Split, load_mnist, random_shift
from model.device import resolve_device
from model.training.batches import ShuffledBatches, make_loader, set_epoch
from model.training.compiled import COMPILE_MODES, compile_in_place
from model.training.distributed import Distributed
from model.training.loop import train_one_epoch
from model.training.objective import TrainingObjective


def load_peer(checkout: Path) -> types.ModuleType:
    """XifengGuo's capsulelayers.py + capsulenet.py as modules, `.cuda()` -> the input's device."""
    modules = {}
    for name in ("capsulelayers", "capsulenet"):
        source = (checkout / f"{name}.py").read_text()
        source = source.replace(".cuda()", ".to(x.device)")
        source = source.replace("from torchvision import transforms, datasets\n", "")
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(compile(source, str(checkout / f"{name}.py"), "exec"), module.__dict__)
        modules[name] = module
    return modules["capsulenet"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def ours(
    train: Split, device: torch.device, batch: int, amp: bool, compile_mode: str | None, epochs: int
) -> dict:
    torch.manual_seed(0)
    model = CapsNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda")  # as training
    objective = TrainingObjective(model, model.config, max_shift=2, amp=amp)
    compile_in_place(objective, compile_mode)  # as `capsnet-train --compile-mode` does
    args = Namespace(seed=0, epochs=epochs)
    single = Distributed()
    loader = make_loader(train, batch, 0, single, device)
    # the full batch and the epoch's last, smaller one: both shapes compiled before timing
    warm = make_loader(train.head(batch + len(train) % batch or batch), batch, 0, single, device)

    def epoch(which: ShuffledBatches, number: int) -> None:
        set_epoch(which, 0, number)
        train_one_epoch(objective, which, optimizer, device, args, number, single)

    warmup_s = timed(lambda: [epoch(warm, 0) for _ in range(3)], device)
    epochs_s = [timed(partial(epoch, loader, number), device) for number in range(1, epochs + 1)]
    return {"epoch_s": epochs_s[-1], "epochs_s": epochs_s, "warmup_s": warmup_s}


def peer(train: Split, device: torch.device, batch: int, checkout: Path, epochs: int) -> dict:
    capsulenet = load_peer(checkout)
    torch.manual_seed(0)
    model = capsulenet.CapsuleNet(input_size=[1, 28, 28], classes=10, routings=3).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    shift = torch.Generator().manual_seed(0)
    lam_recon = 0.0005 * 784  # the peer's default: 0.0005 x the summed squared error

    def step(x: Tensor, labels: Tensor) -> None:
        x = random_shift(x, 2, shift)
        y = torch.zeros(labels.size(0), 10, device=device).scatter_(1, labels.view(-1, 1), 1.0)
        optimizer.zero_grad()
        y_pred, x_recon = model(x, y)
        capsulenet.caps_loss(y, y_pred, x, x_recon, lam_recon).backward()
        optimizer.step()

    loader = make_loader(train, batch, 0, Distributed(), device)
    model.train()
    warm = iter(loader)
    warmup_s = timed(lambda: [step(*next(warm)) for _ in range(min(5, len(loader)))], device)
    epochs_s = [timed(lambda: [step(x, y) for x, y in loader], device) for _ in range(epochs)]
    return {"epoch_s": epochs_s[-1], "epochs_s": epochs_s, "warmup_s": warmup_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=128, help="(default: 128, the paper's)")
    p.add_argument("--images", type=int, default=None, help="epoch size (default: all 60k)")
    p.add_argument("--peer", type=Path, default=None, help="a XifengGuo/CapsNet-Pytorch checkout")
    p.add_argument(
        "--epochs", type=int, default=2, help="timed epochs of each; the last is reported (default: 2)"
    )
    p.add_argument("--no-compile", action="store_true", help="skip the bf16 + compile variants")
    p.add_argument(
        "--compile-mode",
        action="append",
        default=[],
        choices=COMPILE_MODES[1:],
        help="also time bf16 + torch.compile in this mode, e.g. reduce-overhead (CUDA graphs); repeatable",
    )
    args = p.parse_args()
    device = resolve_device(args.device)
    data = load_mnist()
    train = data.train.concat(data.valid).head(args.images)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(
        f"device: {device} ({name}), torch {torch.__version__}, {len(train)} images, batch {args.batch_size}"
    )
    variants: dict[str, Callable[[], dict]] = {
        "capsnet-serve fp32": lambda: ours(train, device, args.batch_size, False, None, args.epochs)
    }
    if not args.no_compile:
        for mode in ["default", *args.compile_mode]:
            label = "capsnet-serve bf16+compile" + ("" if mode == "default" else f" ({mode})")
            variants[label] = lambda mode=mode: ours(train, device, args.batch_size, True, mode, args.epochs)
    if args.peer is not None:
        variants["XifengGuo/CapsNet-Pytorch fp32"] = lambda: peer(
            train, device, args.batch_size, args.peer, args.epochs
        )
    results = {}
    for label, run in variants.items():
        results[label] = run()
        r = results[label]
        each = ", ".join(f"{s:.2f}" for s in r["epochs_s"])
        print(
            f"{label:<32} epoch {r['epoch_s']:7.2f} s  {len(train) / r['epoch_s']:8.0f} images/s"
            f"  (epochs {each} s; warm-up {r['warmup_s']:.1f} s)"
        )
    peer_label = "XifengGuo/CapsNet-Pytorch fp32"
    if peer_label in results:
        for label, r in results.items():
            if label != peer_label:
                print(f"{label} vs the peer: {results[peer_label]['epoch_s'] / r['epoch_s']:.2f}x faster")
    print(json.dumps({"device": name, "images": len(train), "results": results}))


if __name__ == "__main__":
    main()
