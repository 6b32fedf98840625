"""A training run's output directory: one run per directory, and a log that matches its checkpoint.

A fresh run refuses a directory that holds another run's files (appending to its `metrics.jsonl`
or resuming its checkpoint would mix two runs) unless told to start over. `--resume` refuses a
checkpoint made with other data settings (a `--dry-run`'s, say). The per-epoch log travels inside
the checkpoint and `metrics.jsonl` is rewritten from it after each save, so a run killed between
the two never logs an epoch twice.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
RUN_FILES = (
    CHECKPOINT,
    METRICS,
    *(f"{name}.{suffix}" for name in ("last", "best", "swa") for suffix in ("safetensors", "json")),
)
# What must match for `--resume` to continue the same run; the schedule (epochs, rates) may change.
SAME_RUN_KEYS = ("dry_run", "train_subset", "valid_subset", "full_train", "batch_size", "routing_iterations")


class RunDirError(RuntimeError):
    """The output directory holds files that this run must not append to or continue."""


def claim(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Checks that a run may write into `out_dir`; with `overwrite`, removes an earlier run's files."""
    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    if overwrite:
        for name in found:
            (out_dir / name).unlink(missing_ok=True)  # other ranks of a DDP run may be here too
        return
    if resume and (out_dir / CHECKPOINT).exists():
        return
    if found and (out_dir / CHECKPOINT).exists():
        raise RunDirError(
            f"{out_dir} holds another run ({', '.join(found)}): pass --resume to continue it, "
            "--overwrite to delete its files and start over, or choose another --out-dir"
        )
    if found:
        raise RunDirError(
            f"{out_dir} holds another run's files ({', '.join(found)}) and no checkpoint to resume: "
            "pass --overwrite to delete them and start over, or choose another --out-dir"
        )


def recipe_of(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as plain JSON values, for the model card and the checkpoint."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def check_same_run(saved: dict[str, Any] | None, recipe: dict[str, Any], out_dir: Path) -> None:
    """Refuses to resume a checkpoint whose run used other data settings than this command."""
    if saved is None:
        return
    differ = [key for key in SAME_RUN_KEYS if saved.get(key) != recipe.get(key)]
    if differ:
        changes = ", ".join(f"{key} {saved.get(key)!r} -> {recipe.get(key)!r}" for key in differ)
        raise RunDirError(
            f"{out_dir / CHECKPOINT} is from a run with other settings ({changes}): resume it with the "
            "same settings, or pass --overwrite to start over"
        )


def write_metrics(out_dir: Path, records: list[dict[str, Any]]) -> None:
    """Rewrites `metrics.jsonl` atomically: one JSON line per epoch, exactly the checkpoint's log."""
    path = out_dir / METRICS
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(record) + "\n" for record in records))
    os.replace(tmp, path)


def read_metrics(out_dir: Path, last_epoch: int) -> list[dict[str, Any]]:
    """The log of a checkpoint that predates the log inside it: its lines up to `last_epoch`."""
    path = out_dir / METRICS
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record for record in records if record["epoch"] <= last_epoch]
