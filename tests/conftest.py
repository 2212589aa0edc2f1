"""Tiny, learnable data sets written in the real on-disk formats, and a test environment with no network."""
from __future__ import annotations

import gzip
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest


def learnable_images(n: int, size: int, channels: int, classes: int, seed: int):
    """Class k is a bright square at a place chosen by k, on noise: easy to learn, impossible to guess."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 60, (n, channels, size, size)).astype(np.uint8)
    cell = size // 4
    for i, k in enumerate(labels):
        r, c = divmod(int(k) % 16, 4)
        images[i, :, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 230
    return images, labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist(root: Path, n_train=600, n_test=200, folder="MNIST/raw") -> Path:
    """A fake MNIST in torchvision's layout: <root>/MNIST/raw/*-ubyte.gz."""
    raw = root / folder
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = learnable_images(n, 28, 1, 10, seed)
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", x[:, 0])
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", y)
    return root


def write_cifar_batch(path: Path, images: np.ndarray, labels) -> None:
    batch = {b"batch_label": b"test", b"labels": [int(v) for v in labels],
             b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(images)}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_cifar(root: Path, per_batch=40) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(folder / name, *learnable_images(per_batch, 32, 3, 10, i))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2))
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test gets its own cache and no $CNNLAB_DATA; downloads work only from file:// URLs."""
    import urllib.request

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr("cnnlab.data.sources.SYSTEM_ROOT", tmp_path / "system")
    real_urlopen = urllib.request.urlopen

    def offline(url, *args, **kwargs):
        if str(url).startswith("file:"):
            return real_urlopen(url, *args, **kwargs)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def mnist_root(tmp_path):
    return make_mnist(tmp_path / "data")
