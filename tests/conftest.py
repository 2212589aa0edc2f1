"""Tiny, learnable data sets written in the real on-disk formats, and a test environment with no network."""

from __future__ import annotations

import contextlib
import gzip
import pickle
import struct
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
        images[i, :, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = 230
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
    batch = {
        b"batch_label": b"test",
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), -1),
        b"filenames": [b"x.png"] * len(images),
    }
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


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("one_thread")`): on a busy machine a second
    thread waits for a core more than it helps. Restored after the module: other tests compare runs bit for bit
    with runs in child processes, which use torch's default."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mnist_root(tmp_path):
    return make_mnist(tmp_path / "data")


# The explorer (cnnlab serve): small runs of the three lesson models, a live server, a real headless Chromium.


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory) -> Path:
    """A RUNS_DIR holding mlp and mnist-cnn on a fake MNIST and lesson-cnn on a fake CIFAR-10, one epoch each."""
    import cnnlab

    data = tmp_path_factory.mktemp("served-data")
    make_mnist(data, n_train=400, n_test=100)
    make_cifar(data, per_batch=40)
    runs = tmp_path_factory.mktemp("served-runs")
    for model, dataset in (("mlp", "mnist"), ("mnist-cnn", "mnist"), ("lesson-cnn", "cifar10")):
        cnnlab.train(
            model,
            dataset,
            data_root=str(data),
            out=runs,
            epochs=1,
            batch_size=32,
            precision="fp32",
            progress=False,
            log=lambda line: None,
        )
    return runs


@contextlib.contextmanager
def serving(runs: Path, **app_options):
    """The explorer over `runs` (and `create_app`'s other options), served by uvicorn in a thread on a free port:
    yields its base URL."""
    import threading
    import time

    import uvicorn

    from cnnlab.serve import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(runs, **app_options), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(served_runs):
    """The explorer over `served_runs`: yields its base URL."""
    with serving(served_runs) as url:
        yield url


def pixels(data_url: str) -> np.ndarray:
    """The image a data URL holds, as an array."""
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.partition(",")[2]))))


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium through Selenium (scripts/setup.sh installs both). Where none could be installed
    the browser tests are skipped, with the reason printed in the summary: never silently."""
    import shutil

    driver_path, chromium = shutil.which("chromedriver"), shutil.which("chromium")
    if not (driver_path and chromium):
        pytest.skip(
            "NO BROWSER: chromium and chromium-driver are not installed (scripts/setup.sh installs them "
            "with apt); the explorer's browser tests did not run"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
