"""capsnet-export: the ONNX graph agrees with PyTorch, carries the card, and Triton's config fits it.

The shipped weights are exported once for the module. The agreement test runs a 300-image slice
of the MNIST test split to stay fast; `capsnet-export --check` runs all 10k.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from app.loading import describe
from model.checkpoint import load_weights, read_model_card
from model.data import Mnist, sha256_file
from model.export import compare, main, metadata
from model.signature import image_input, outputs


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, shipped_weights: Path) -> Path:
    out = tmp_path_factory.mktemp("export")
    main(["--weights", str(shipped_weights), "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def model_dir(repository: Path, shipped_weights: Path) -> Path:
    return repository / shipped_weights.stem


def test_exported_graph_agrees_with_pytorch_on_mnist_test_images(
    model_dir: Path, shipped_weights: Path, mnist: Mnist
) -> None:
    agreement = compare(model_dir / "1" / "model.onnx", load_weights(shipped_weights), mnist.test.head(300))
    assert agreement.images == 300
    assert agreement.max_score_diff < 1e-4
    assert agreement.prediction_mismatches == 0


def test_graph_takes_any_batch_size_and_gives_every_output(model_dir: Path, shipped_weights: Path) -> None:
    config = load_weights(shipped_weights).config
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [image_input(config).name]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a symbolic, dynamic batch dimension
    for batch in (1, 7):
        images = np.random.default_rng(batch).random((batch, *image_input(config).shape), dtype=np.float32)
        results = session.run(None, {"images": images})
        for spec, result in zip(outputs(config), results, strict=True):
            assert result.shape == (batch, *spec.shape), spec.name
        scores, digit, poses, reconstruction = results
        np.testing.assert_array_equal(digit, scores.argmax(axis=1))
        np.testing.assert_allclose(np.linalg.norm(poses, axis=-1), scores, rtol=1e-5)
        assert reconstruction.min() >= 0 and reconstruction.max() <= 1  # the decoder's sigmoid


def test_graph_metadata_carries_the_card_and_the_name_and_version_the_service_reports(
    model_dir: Path, shipped_weights: Path
) -> None:
    props = metadata(onnx.load(model_dir / "1" / "model.onnx", load_external_data=False))
    card = read_model_card(shipped_weights)
    sha256 = sha256_file(shipped_weights)
    served = describe(load_weights(shipped_weights), torch.device("cpu"), shipped_weights, sha256)
    assert (props["name"], props["version"]) == (served["name"], served["version"])
    assert props["weights_sha256"] == sha256
    assert json.loads(props["labels"]) == card["labels"]
    assert json.loads(props["evaluation"]) == card["evaluation"]
    assert json.loads(props["config"]) == card["config"]
    assert json.loads((model_dir / "model-card.json").read_text()) == card


def test_triton_config_declares_the_graph_with_dynamic_batching(
    model_dir: Path, shipped_weights: Path
) -> None:
    config = (model_dir / "config.pbtxt").read_text()
    assert f'name: "{shipped_weights.stem}"' in config
    assert 'backend: "onnxruntime"' in config and "max_batch_size: 32" in config
    assert "dynamic_batching { max_queue_delay_microseconds: 5000 }" in config
    assert '{ name: "images" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] }' in config
    assert '{ name: "poses" data_type: TYPE_FP32 dims: [ 10, 16 ] }' in config
    assert '{ name: "digit" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } }' in config
    assert 'label_filename: "labels.txt"' in config
    assert (model_dir / "labels.txt").read_text().split() == read_model_card(shipped_weights)["labels"]


def test_comparison_notices_a_model_that_drifted_from_the_graph(
    model_dir: Path, shipped_weights: Path, mnist: Mnist
) -> None:
    drifted = load_weights(shipped_weights)
    with torch.no_grad():
        drifted.conv1.bias.add_(0.05)
    agreement = compare(model_dir / "1" / "model.onnx", drifted, mnist.test.head(20))
    assert agreement.max_score_diff >= 1e-4
    assert not agreement.acceptable()
