"""Precision: `auto` picks bf16 only where the hardware computes it, and bf16 runs the convolutions."""

from __future__ import annotations

import pytest
import torch

import model.precision as precision_module
from model.capsnet import CapsNet, CapsNetConfig
from model.precision import CPU_FP32_BELOW, ServingPrecision, autocast, fp32_below, resolve_precision


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_cpu_follows_its_bf16_instructions(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", torch.device("cpu")) == expected


def test_auto_on_a_gpu_is_bf16_and_explicit_choices_stand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_an_unknown_precision_names_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        resolve_precision("fp16", torch.device("cpu"))


def test_bf16_runs_the_convolutions_in_bf16_and_keeps_the_capsules_fp32() -> None:
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()
    images = torch.rand(3, 1, 28, 28)
    conv_dtypes: list[torch.dtype] = []
    model.conv1.register_forward_hook(lambda module, args, out: conv_dtypes.append(out.dtype))
    with torch.inference_mode():
        with autocast(torch.device("cpu"), "bf16"):
            poses = model.poses(images)
        reference = model.poses(images)
    assert conv_dtypes == [torch.bfloat16, torch.float32]
    assert poses.dtype == torch.float32
    assert torch.allclose(poses, reference, atol=2e-2)


def test_bf16_convolution_weights_stored_once_give_exactly_what_autocast_gives() -> None:
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        expected = model.poses(images)
    precision = ServingPrecision(model, torch.device("cpu"), "bf16")
    with torch.inference_mode(), precision.region(3):
        stored = model.poses(images)
    assert model.conv1.weight.dtype == model.primary.conv.weight.dtype == torch.bfloat16
    assert model.digits.weight.dtype == torch.float32
    assert torch.equal(stored, expected)


def test_small_passes_run_in_fp32_and_large_ones_in_bf16_back_and_forth() -> None:
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()
    images = torch.rand(CPU_FP32_BELOW, 1, 28, 28)
    with torch.inference_mode():
        fp32 = model.poses(images[:1])
        with autocast(torch.device("cpu"), "bf16"):
            bf16 = model.poses(images)
    precision = ServingPrecision(model, torch.device("cpu"), "bf16", fp32_below=CPU_FP32_BELOW)
    for _ in range(2):
        with torch.inference_mode(), precision.region(1):
            assert model.primary.conv.weight.dtype == torch.float32
            assert torch.equal(model.poses(images[:1]), fp32)
        with torch.inference_mode(), precision.region(CPU_FP32_BELOW):
            assert model.primary.conv.weight.dtype == torch.bfloat16
            assert torch.equal(model.poses(images), bf16)
    assert precision.for_batch(CPU_FP32_BELOW - 1) == "fp32" and precision.for_batch(32) == "bf16"


def test_only_auto_on_a_bf16_cpu_runs_small_passes_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert fp32_below("auto", cpu) == CPU_FP32_BELOW > 1
    assert fp32_below("bf16", cpu) == fp32_below("fp32", cpu) == fp32_below("auto", gpu) == 1
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert fp32_below("auto", cpu) == 1
