"""The training loop and CLI: loss falls, metrics are logged, a killed run resumes, DDP works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from model import train as train_module
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import load_training_state, load_weights, read_model_card, save_weights
from model.data import Mnist, random_offsets, random_shift, sha256_file
from model.losses import capsnet_loss
from model.train import main, parse_args, warn_if_bf16_is_emulated
from model.training.batches import make_loader, set_epoch
from model.training.distributed import Distributed
from model.training.loop import train_one_epoch
from model.training.non_digits import NO_DIGIT
from model.training.objective import TrainingObjective
from model.training.weight_average import WeightAverage

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-autocast"])
def test_a_tiny_training_run_lowers_the_loss(mnist: Mnist, amp: bool) -> None:
    torch.manual_seed(0)
    cfg = CapsNetConfig(conv1_channels=32, primary_types=8)
    model = CapsNet(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = make_loader(mnist.train.head(256), batch_size=32, seed=0, dist_info=Distributed())
    objective = TrainingObjective(model, cfg, max_shift=2, amp=amp)
    args = Namespace(seed=0, epochs=4)
    losses = []
    for epoch in range(1, 5):
        set_epoch(loader, 0, epoch)
        cpu = torch.device("cpu")
        metrics = train_one_epoch(objective, loader, optimizer, cpu, args, epoch, Distributed())
        losses.append(metrics["train_loss"])
    assert losses[-1] < 0.7 * losses[0], losses
    assert metrics["train_accuracy"] > 0.3


def test_the_objective_is_the_papers_loss_on_the_shifted_batch_with_its_sums(mnist: Mnist) -> None:
    torch.manual_seed(0)
    cfg = CapsNetConfig(conv1_channels=8, primary_types=2)
    model = CapsNet(cfg)
    images, labels = mnist.train.head(8).tensors()
    offsets = random_offsets(8, max_shift=2, generator=torch.Generator().manual_seed(3))
    loss, sums = TrainingObjective(model, cfg, max_shift=2, amp=False)(images, offsets, labels)
    shifted = random_shift(images, max_shift=2, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(shifted, images)
    out = model(shifted, labels)
    expected = capsnet_loss(out, shifted, labels, cfg)
    torch.testing.assert_close(loss, expected.total)
    correct = (out.lengths.argmax(1) == labels).sum().float()
    losses = torch.stack([expected.total, expected.margin, expected.reconstruction]) * 8
    torch.testing.assert_close(sums, torch.cat([losses.detach(), correct[None], torch.tensor([8.0, 8.0])]))


def test_the_objective_scores_no_digit_images_by_their_lengths_alone(mnist: Mnist) -> None:
    torch.manual_seed(0)
    cfg = CapsNetConfig(conv1_channels=8, primary_types=2)
    model = CapsNet(cfg)
    images, labels = mnist.train.head(6).tensors()
    labels = torch.cat([labels[:4], torch.full((2,), NO_DIGIT)])
    offsets = torch.full((2, 6), 2)  # no shift
    loss, sums = TrainingObjective(model, cfg, max_shift=2, amp=False)(images, offsets, labels)
    out = model(images, labels.clamp(min=0))
    absent = cfg.lambda_absent * (out.lengths[4:] - cfg.m_minus).clamp(min=0).pow(2).sum(1)
    digits = capsnet_loss(model(images[:4], labels[:4]), images[:4], labels[:4], cfg)
    margin = (digits.margin * 4 + absent.sum()) / 6
    torch.testing.assert_close(loss, margin + cfg.reconstruction_weight * digits.reconstruction)
    assert sums[4:].tolist() == [6.0, 4.0]  # seen, digits
    assert sums[3] <= 4  # a no-digit image is never counted correct


def test_non_digits_join_the_training_split_only(mnist: Mnist, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "load_mnist", lambda _: mnist)
    args = parse_args(["--train-subset", "40", "--valid-subset", "8", "--non-digits", "10"])
    train_split, valid = train_module.splits(args, CapsNetConfig())
    assert len(train_split) == 50 and (train_split.labels == NO_DIGIT).sum() == 10
    assert len(valid) == 8 and (valid.labels >= 0).all()


def test_pen_digits_are_drawn_from_the_training_digits_only(
    mnist: Mnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train_module, "load_mnist", lambda _: mnist)
    options = ["--train-subset", "40", "--valid-subset", "8", "--pen-digits", "30", "--non-digits", "5"]
    train_split, valid = train_module.splits(parse_args(options), CapsNetConfig())
    assert len(train_split) == 75 and (train_split.labels == NO_DIGIT).sum() == 5
    pen_labels = train_split.labels[40:70]
    assert (pen_labels >= 0).all() and set(pen_labels.tolist()) <= set(mnist.train.labels[:40].tolist())
    assert len(valid) == 8


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
    objective = TrainingObjective(model, cfg, max_shift=2, amp=False)
    args = Namespace(seed=0, epochs=1)
    cpu = torch.device("cpu")
    train_one_epoch(objective, loader, optimizer, cpu, args, 1, Distributed(), swa.averaged)
    assert swa.steps == len(snapshots) == 3
    for i, averaged in enumerate(swa.averaged.module.parameters()):
        mean = torch.stack([step[i] for step in snapshots]).mean(0)
        torch.testing.assert_close(averaged, mean)
    assert not torch.equal(next(swa.averaged.module.parameters()), next(model.parameters()))


def read_metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


TINY_RUN = ("--train-subset", "64", "--valid-subset", "64", "--batch-size", "32")


def run_cli(out_dir: Path, *extra: str) -> None:
    """`capsnet-train` in this process (no interpreter start per run) on 64 images."""
    main([*TINY_RUN, "--out-dir", str(out_dir), *extra])


def test_cli_logs_keeps_the_best_and_says_where_its_files_are(tmp_path: Path, capsys) -> None:
    run_cli(tmp_path, "--epochs", "2")
    out = capsys.readouterr().out
    assert "epoch 1/2: loss " in out and "epoch 2/2: loss " in out
    assert f"{tmp_path / 'best.safetensors'}" in out and f"{tmp_path / 'metrics.jsonl'}" in out
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
    assert records[1]["lr"] < records[0]["lr"]
    assert load_training_state(tmp_path / "checkpoint.pt")["epoch"] == 2
    card = read_model_card(tmp_path / "best.safetensors")
    assert card["training"]["validation_accuracy"] == max(r["val_accuracy"] for r in records)
    best_epoch = card["training"]["epochs_trained"]
    assert [h["epoch"] for h in card["training"]["history"]] == list(range(1, best_epoch + 1))
    assert load_weights(tmp_path / "best.safetensors").config == CapsNetConfig()
    last = read_model_card(tmp_path / "last.safetensors")["training"]
    assert last["epochs_trained"] == 2 and last["validation_held_out"]
    assert last["validation_accuracy"] == records[1]["val_accuracy"]


def test_a_run_killed_at_any_moment_resumes_without_repeating_an_epoch(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "model.train", *TINY_RUN, "--epochs", "50", "--out-dir", str(tmp_path)]
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (tmp_path / "metrics.jsonl").exists():  # written after epoch 1's checkpoint
        assert run.poll() is None, run.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "epoch 1 did not finish"
        time.sleep(0.05)
    run.kill()  # SIGKILL: nothing gets to clean up, wherever the run was
    run.wait()
    run.stderr.close()
    done = load_training_state(tmp_path / "checkpoint.pt")["epoch"]
    assert done < 50
    main([*TINY_RUN, "--epochs", str(done + 1), "--out-dir", str(tmp_path), "--resume"])
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == list(range(1, done + 2))
    assert records[-1]["lr"] == pytest.approx(1e-3 * 0.96**done)  # the decay survived the kill
    assert load_training_state(tmp_path / "checkpoint.pt")["epoch"] == done + 1


def test_ctrl_c_ends_with_one_line_saying_how_to_resume(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "model.train", *TINY_RUN, "--epochs", "50", "--out-dir", str(tmp_path)]
    # a shell that starts the tests in the background hands them SIGINT ignored: restore it
    run = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while not (tmp_path / "metrics.jsonl").exists():
        assert run.poll() is None and time.monotonic() < deadline, "epoch 1 did not finish"
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in stderr
    assert f"interrupted; {tmp_path / 'checkpoint.pt'} holds the last finished epoch: add --resume" in stderr


@pytest.mark.parametrize(
    ("amp", "device", "native", "warned"),
    [
        (True, "cpu", False, True),
        (True, "cpu", True, False),
        (False, "cpu", False, False),
        (True, "cuda", False, False),
    ],
)
def test_amp_on_a_cpu_without_bf16_instructions_warns_that_it_is_slower(
    monkeypatch, capsys, amp: bool, device: str, native: bool, warned: bool
) -> None:
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: native)
    warn_if_bf16_is_emulated(amp, torch.device(device))
    err = capsys.readouterr().err
    assert ("no bf16 instructions" in err and "--amp" in err) == warned


def test_a_fresh_run_refuses_a_directory_holding_another_run(tmp_path: Path, capsys) -> None:
    run_cli(tmp_path, "--epochs", "1", "--seed", "1")
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(SystemExit, match="holds another run .*--resume.*--overwrite"):
        run_cli(tmp_path, "--epochs", "1")
    assert (tmp_path / "metrics.jsonl").read_text() == before
    run_cli(tmp_path, "--epochs", "1", "--overwrite")
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]
    assert read_model_card(tmp_path / "last.safetensors")["training"]["recipe"]["seed"] == 0


def test_resume_refuses_a_checkpoint_made_with_other_data_settings(tmp_path: Path) -> None:
    run_cli(tmp_path, "--epochs", "1")
    with pytest.raises(SystemExit, match="other settings .*train_subset 64 -> 32"):
        run_cli(tmp_path, "--epochs", "2", "--resume", "--train-subset", "32")


def test_a_dry_run_writes_apart_from_a_real_run() -> None:
    assert parse_args(["--dry-run"]).out_dir != parse_args([]).out_dir


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


def test_compile_mode_implies_compile_and_compile_alone_keeps_the_default_mode() -> None:
    assert parse_args([]).compile_mode is None and not parse_args([]).compile
    assert parse_args(["--compile"]).compile_mode == "default"
    cuda_graphs = parse_args(["--compile-mode", "reduce-overhead"])
    assert cuda_graphs.compile and cuda_graphs.compile_mode == "reduce-overhead"
    with pytest.raises(SystemExit):
        parse_args(["--compile-mode", "fastest"])


def test_the_cli_compiles_in_the_mode_asked_for_and_resumes_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[str | None] = []

    def record_mode(fn, *args, mode: str | None = None, **kwargs):  # compiling on CPU takes minutes
        modes.append(mode)
        return fn

    monkeypatch.setattr(torch, "compile", record_mode)
    run_cli(tmp_path, "--epochs", "1", "--compile-mode", "reduce-overhead")
    assert modes == ["reduce-overhead"]
    assert read_model_card(tmp_path / "last.safetensors")["training"]["recipe"]["compile_mode"] == (
        "reduce-overhead"
    )
    run_cli(tmp_path, "--epochs", "2", "--resume")  # the checkpoint is the uncompiled model's
    assert modes == ["reduce-overhead"]
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
