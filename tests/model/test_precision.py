"""Precision: `auto` picks bf16 only where the hardware computes it, and bf16 runs the convolutions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import model.precision as precision_module
from model.capsnet import CapsNet, CapsNetConfig
from model.packed_conv import PackedConv2d
from model.precision import ServingPrecision, autocast, packs_bf16, resolve_precision


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


needs_packing = pytest.mark.skipif(
    not packs_bf16(torch.device("cpu")), reason="needs a CPU with bf16 instructions and oneDNN"
)


def test_where_nothing_packs_bf16_weights_stored_once_give_exactly_what_autocast_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_module, "packs_bf16", lambda device: False)  # as on a GPU
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        expected = model.poses(images)
    precision = ServingPrecision(model, torch.device("cpu"), "bf16")
    with torch.inference_mode(), precision.region():
        stored = model.poses(images)
    assert not precision.packed
    assert model.conv1.weight.dtype == model.primary.conv.weight.dtype == torch.bfloat16
    assert model.digits.weight.dtype == torch.float32
    assert torch.equal(stored, expected)


@needs_packing
@pytest.mark.parametrize("batch", [1, 5])
def test_a_packed_convolution_computes_the_bf16_convolution_at_any_batch_size(batch: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, kernel_size=5, stride=2)
    packed = PackedConv2d(conv, (1, 16, 20, 20))
    x = torch.rand(batch, 16, 20, 20)
    with torch.inference_mode():
        expected = F.conv2d(x.bfloat16(), conv.weight.bfloat16(), conv.bias.bfloat16(), stride=2)
        got = packed(x)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    assert torch.allclose(got.float(), expected.float(), atol=2e-2, rtol=2e-2)


@needs_packing
def test_bf16_on_a_bf16_cpu_packs_every_convolution_and_keeps_the_capsules_fp32() -> None:
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig(conv1_channels=16, primary_types=4)).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        reference = model.poses(images)
    precision = ServingPrecision(model, torch.device("cpu"), "bf16")
    with torch.inference_mode(), precision.region():
        poses = model.poses(images)
        alone = model.poses(images[:1])
    assert precision.packed
    assert not any(isinstance(m, nn.Conv2d) for m in model.modules())
    assert isinstance(model.conv1, PackedConv2d) and isinstance(model.primary.conv, PackedConv2d)
    assert model.digits.weight.dtype == torch.float32
    assert poses.dtype == torch.float32
    assert torch.allclose(poses, reference, atol=2e-2)
    assert torch.allclose(alone, poses[:1], atol=1e-3)


def test_only_zero_padding_of_a_given_size_is_packed() -> None:
    with pytest.raises(ValueError, match="zero padding"):
        PackedConv2d(nn.Conv2d(4, 4, kernel_size=3, padding="same"), (1, 4, 8, 8))
