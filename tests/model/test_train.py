"""The training loop and CLI: loss falls, metrics are logged, a killed run resumes, DDP works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import load_training_state, load_weights, read_model_card, save_weights
from model.data import Mnist, sha256_file
from model.train import Distributed, WeightAverage, make_loader, set_epoch, train_one_epoch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-autocast"])
def test_a_tiny_training_run_lowers_the_loss(mnist: Mnist, amp: bool) -> None:
    torch.manual_seed(0)
    cfg = CapsNetConfig(conv1_channels=32, primary_types=8)
    model = CapsNet(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = make_loader(mnist.train.head(256), batch_size=32, seed=0, dist_info=Distributed())
    args = Namespace(max_shift=2, amp=amp, seed=0)
    losses = []
    for epoch in range(1, 5):
        set_epoch(loader, 0, epoch)
        cpu = torch.device("cpu")
        metrics = train_one_epoch(model, loader, optimizer, cfg, cpu, args, epoch, Distributed())
        losses.append(metrics["train_loss"])
    assert losses[-1] < 0.7 * losses[0], losses
    assert metrics["train_accuracy"] > 0.3


def test_the_weight_average_takes_in_every_step(mnist: Mnist) -> None:
    torch.manual_seed(0)
    cfg = CapsNetConfig(conv1_channels=8, primary_types=2)
    model = CapsNet(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    swa = WeightAverage.create(model, optimizer, start_epoch=1, lr=1e-2)
    snapshots: list[list[torch.Tensor]] = []
    optimizer.register_step_post_hook(
        lambda *_: snapshots.append([p.detach().clone() for p in model.parameters()])
    )
    loader = make_loader(mnist.train.head(48), batch_size=16, seed=0, dist_info=Distributed())
    args = Namespace(max_shift=2, amp=False, seed=0)
    cpu = torch.device("cpu")
    train_one_epoch(model, loader, optimizer, cfg, cpu, args, 1, Distributed(), swa.averaged)
    assert swa.steps == len(snapshots) == 3
    for i, averaged in enumerate(swa.averaged.module.parameters()):
        mean = torch.stack([step[i] for step in snapshots]).mean(0)
        torch.testing.assert_close(averaged, mean)
    assert not torch.equal(next(swa.averaged.module.parameters()), next(model.parameters()))


def read_metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def run_cli(out_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "model.train",
        "--train-subset",
        "64",
        "--valid-subset",
        "64",
        "--batch-size",
        "32",
        "--out-dir",
        str(out_dir),
        *extra,
    ]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True)


def test_cli_logs_keeps_the_best_and_resumes_after_a_kill(tmp_path: Path) -> None:
    run_cli(tmp_path, "--epochs", "1")
    first = load_training_state(tmp_path / "checkpoint.pt")
    assert first["epoch"] == 1
    # a run killed during epoch 2 leaves epoch 1's checkpoint: resuming continues from there
    result = run_cli(tmp_path, "--epochs", "2", "--resume")
    assert "resuming from" in result.stdout and "after epoch 1" in result.stdout
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[0]) >= {
        "train_loss",
        "train_margin_loss",
        "train_reconstruction_loss",
        "train_accuracy",
        "val_accuracy",
        "lr",
        "images_per_s",
    }
    assert records[1]["lr"] < records[0]["lr"]  # the exponential decay survived the restart
    assert load_training_state(tmp_path / "checkpoint.pt")["epoch"] == 2
    card = read_model_card(tmp_path / "best.safetensors")
    assert card["training"]["validation_accuracy"] == max(r["val_accuracy"] for r in records)
    best_epoch = card["training"]["epochs_trained"]
    assert [h["epoch"] for h in card["training"]["history"]] == list(range(1, best_epoch + 1))
    assert load_weights(tmp_path / "best.safetensors").config == CapsNetConfig()
    last = read_model_card(tmp_path / "last.safetensors")["training"]
    assert last["epochs_trained"] == 2 and last["validation_held_out"]
    assert last["validation_accuracy"] == records[1]["val_accuracy"]


def test_swa_averages_from_its_epoch_holds_its_rate_and_survives_a_resume(tmp_path: Path) -> None:
    swa = ("--swa-start", "2", "--swa-lr", "5e-4")
    run_cli(tmp_path, "--epochs", "2", *swa)  # 64 images at batch 32: two steps an epoch
    run_cli(tmp_path, "--epochs", "3", "--resume", *swa)
    records = read_metrics(tmp_path)
    assert "swa_val_accuracy" not in records[0]
    assert [r["lr"] for r in records] == [1e-3, 1e-3 * 0.96, 5e-4]
    card = read_model_card(tmp_path / "swa.safetensors")["training"]
    assert card["weight_average_of_steps"] == 4  # epochs 2 and 3: the average outlived the kill
    assert card["validation_accuracy"] == records[2]["swa_val_accuracy"]
    assert card["epochs_trained"] == 3
    assert "weight_average_of_steps" not in read_model_card(tmp_path / "last.safetensors")["training"]
    averaged = load_weights(tmp_path / "swa.safetensors").state_dict()
    last = load_weights(tmp_path / "last.safetensors").state_dict()
    assert any(not torch.equal(averaged[name], last[name]) for name in last)


def test_full_train_adds_the_validation_split_and_says_so_on_the_card(tmp_path: Path) -> None:
    run_cli(tmp_path, "--epochs", "1", "--full-train")
    last = read_model_card(tmp_path / "last.safetensors")["training"]
    assert last["train_images"] == 64 + 64  # --train-subset plus --valid-subset
    assert last["validation_held_out"] is False


def test_distributed_data_parallel_with_gloo(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # single node, a free rendezvous port
        "--nproc-per-node",
        "2",
        "-m",
        "model.train",
        "--device",
        "cpu",
        "--train-subset",
        "64",
        "--valid-subset",
        "32",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--out-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    records = read_metrics(tmp_path)
    assert len(records) == 1  # only rank 0 logs
    assert load_weights(tmp_path / "best.safetensors").config == CapsNetConfig()


def test_init_weights_starts_from_them_and_the_card_names_them(tmp_path: Path) -> None:
    first, warm = tmp_path / "first", tmp_path / "warm"
    run_cli(first, "--epochs", "1")
    # lr 0: Adam does not move the weights, so the warm run's best weights are the initial ones
    run_cli(warm, "--epochs", "1", "--lr", "0", "--init-weights", str(first / "best.safetensors"))
    initial = load_weights(first / "best.safetensors").state_dict()
    trained = load_weights(warm / "best.safetensors").state_dict()
    assert all(torch.equal(initial[name], trained[name]) for name in initial)
    origin = read_model_card(warm / "best.safetensors")["training"]["initialized_from"]
    assert origin["weights"] == "best.safetensors"
    assert origin["sha256"] == sha256_file(first / "best.safetensors")
    assert origin["training"] == read_model_card(first / "best.safetensors")["training"]


def test_a_resumed_warm_start_keeps_naming_the_weights_it_began_from(tmp_path: Path) -> None:
    first, warm = tmp_path / "first", tmp_path / "warm"
    run_cli(first, "--epochs", "1")
    start = tmp_path / "start.safetensors"
    start.write_bytes((first / "best.safetensors").read_bytes())
    start_sha = sha256_file(start)
    run_cli(warm, "--epochs", "1", "--init-weights", str(start))
    save_weights(CapsNet(CapsNetConfig()), start)  # the file is replaced mid-run
    run_cli(warm, "--epochs", "2", "--resume", "--init-weights", str(start))
    assert load_training_state(warm / "checkpoint.pt")["origin"]["initialized_from"]["sha256"] == start_sha
    best = read_model_card(warm / "best.safetensors")["training"]["initialized_from"]
    assert best["sha256"] == start_sha
