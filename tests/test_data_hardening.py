"""Bounded memory for any input, and nothing half-written ever read: bombs, corrupt files, killed extractions."""

import gzip
import multiprocessing
import os
import random
import signal
import struct
import tarfile
import time
import zlib

import numpy as np
import pytest
import torch
from conftest import learnable_images, make_cifar, make_mnist, write_cifar_batch, write_idx
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.datasets import _folder_cache_path
from cnnlab.data.formats import read_cifar_batch, read_idx, read_image_folder
from cnnlab.data.sources import safe_extract
from cnnlab.errors import CnnlabError
from cnnlab.images import MAX_PIXELS, open_image, resize_center_crop, to_mode


def png_header_only(path, width, height):
    """A PNG of a few bytes whose header promises width x height grey pixels: what a bomb looks like."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
    )
    return path


def gzip_bomb(path, head: bytes, gigabytes: float):
    """`head`, then that many GiB of zeros, gzipped into ~1 MB per GiB: 1 MiB of zeros per member, concatenated."""
    member = gzip.compress(bytes(1 << 20))
    path.write_bytes(gzip.compress(head) + member * int(gigabytes * 1024))
    return path


def _peak_kb() -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))


def _refuse_each(paths, connection):
    """In a forked child: reset the peak RSS to now, try each file, send back (seconds, error) for each and how
    far the peak rose."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, results = _peak_kb(), []
    for path in paths:
        start = time.perf_counter()
        try:
            (read_idx if path.suffix == ".gz" else open_image)(path)
            message = None
        except CnnlabError as e:
            message = str(e)
        results.append((time.perf_counter() - start, message))
    connection.send((results, (_peak_kb() - before) * 1024))


def test_bombs_are_refused_fast_in_little_memory(tmp_path):
    """Each refusal < 1 s, and < 200 MB more memory for all of them, in a forked child whose peak is its own."""
    thin = tmp_path / "thin.png"
    Image.new("L", (1_000_000, 1)).save(thin)
    files = [
        thin,
        png_header_only(tmp_path / "huge.png", 10_000, 10_000),
        png_header_only(tmp_path / "giant.png", 30_000, 30_000),
        gzip_bomb(tmp_path / "zeros.gz", b"", 1),
        gzip_bomb(tmp_path / "tail.gz", struct.pack(">BBBBIII", 0, 0, 8, 3, 1000, 28, 28) + bytes(784_000), 1),
        gzip_bomb(tmp_path / "promise.gz", struct.pack(">BBBBIII", 0, 0, 8, 3, 60000, 28000, 28), 0.1),
    ]
    assert thin.stat().st_size < 4096 and all(f.stat().st_size < 1.1e6 for f in files)
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_refuse_each, args=(files, send))
    child.start()
    results, extra = receive.recv()
    child.join()
    (_, thin_m), (_, huge_m), (_, giant_m), (_, zero_m), (_, tail_m), (_, big_m) = results
    assert "thin.png: 1000000x1" in thin_m and "50:1" in thin_m
    assert "huge.png: 10000x10000 is 100 Mpx" in huge_m and "limit of 64 Mpx" in huge_m
    assert "giant.png" in giant_m and "64 Mpx" in giant_m
    assert "zeros.gz: not an IDX file" in zero_m
    assert "tail.gz: more data than" in tail_m
    assert "promise.gz" in big_m and "43.8 GiB" in big_m and "limit of 1 GiB" in big_m
    assert max(seconds for seconds, _ in results) < 1.0
    assert extra < 200e6


def test_predicting_a_huge_size_is_refused_before_resizing():
    with pytest.raises(CnnlabError, match="image size 10000 gives 100 Mpx, over cnnlab's limit of 64 Mpx"):
        resize_center_crop(Image.new("L", (4, 4)), 10_000)
    assert MAX_PIXELS >= 50_000_000  # a 50-MP phone photo passes


def test_idx_overflowing_sizes_and_corrupt_deflate(tmp_path):
    path = tmp_path / "overflow"
    path.write_bytes(struct.pack(">BBBBIIII", 0, 0, 8, 4, *[0xFFFFFFFF] * 4))
    with pytest.raises(CnnlabError, match="overflow: IDX header promises .* over cnnlab's limit of 1 GiB"):
        read_idx(path)
    gz = write_idx(tmp_path / "flipped.gz", learnable_images(200, 28, 1, 10, 0)[0][:, 0])
    data = bytearray(gz.read_bytes())
    data[10:18] = b"\xff" * 8  # just past the gzip header: a deflate block of reserved type 3
    gz.write_bytes(bytes(data))
    with pytest.raises(CnnlabError, match="flipped.gz: corrupt or truncated file .*download it again"):
        read_idx(gz)


def test_labels_out_of_range_name_the_file(tmp_path):
    root = make_mnist(tmp_path / "m", n_train=20, n_test=10)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, np.array([1, 2, 200] + [0] * 7, np.uint8))
    with pytest.raises(CnnlabError, match=r"t10k-labels-idx1-ubyte.gz: label 200 \(sample 2\) is outside 0..9"):
        load_dataset("mnist", data_root=root, download=False)
    images = learnable_images(3, 32, 3, 10, 0)[0]
    for bad in (99, -1):
        write_cifar_batch(tmp_path / "data_batch_1", images, [0, bad, 1])
        with pytest.raises(CnnlabError, match=f"data_batch_1: label {bad} .*outside 0..9"):
            read_cifar_batch(tmp_path / "data_batch_1")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_folder_skips_a_bomb_and_matches_a_full_decode(tmp_path, monkeypatch):
    """JPEGs decoded reduced (draft) in worker processes agree with a full decode; a bomb is skipped unopened."""
    monkeypatch.setattr("cnnlab.data.formats.PARALLEL_FROM", 2)
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 200, 800 * 600 * 3).reshape(600, 800, 3)
    for k in range(6):
        (root / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        photo = (smooth + rng.integers(0, 20, smooth.shape) + 10 * k).astype(np.uint8)
        Image.fromarray(photo).save(root / f"c{k % 2}" / f"{k}.jpg", quality=90)
    png_header_only(root / "c1" / "bomb.png", 10_000, 10_000)
    with pytest.warns(UserWarning, match="skipped 1 unreadable file.*bomb.png: 10000x10000 is 100 Mpx"):
        images, labels, classes = read_image_folder(root, image_size=64)
    assert images.shape == (6, 3, 64, 64) and images.flags["C_CONTIGUOUS"] and labels.tolist() == [0, 0, 0, 1, 1, 1]
    for i, name in enumerate(["0", "2", "4", "1", "3", "5"]):
        full = np.asarray(resize_center_crop(to_mode(Image.open(root / f"c{int(name) % 2}" / f"{name}.jpg"), 3), 64))
        assert np.abs(full.transpose(2, 0, 1).astype(int) - images[i]).mean() < 3


def _folder(tmp_path, n=4):
    for k in range(n):
        (tmp_path / "f" / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 30 * k).save(tmp_path / "f" / f"c{k % 2}" / f"{k}.png")
    return tmp_path / "f"


@pytest.mark.parametrize("damage", ["truncate", "reshape", "json"])
def test_damaged_folder_cache_is_named_and_rebuilt(tmp_path, damage):
    root = _folder(tmp_path)
    first = load_dataset("imagefolder", data_root=root, test_fraction=0.5)
    first_images = first.train.images.clone()  # read now: the cache is memory-mapped, and damaged in place below
    npy = _folder_cache_path(root, None, None)
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-10])
    elif damage == "reshape":
        np.save(npy, np.zeros((4, 1, 4, 16), np.uint8))
    else:
        npy.with_suffix(".json").write_text('{"shape": [4, 1, 8')
    with pytest.warns(UserWarning, match=f"{npy}: damaged decoded-image cache"):
        again = load_dataset("imagefolder", data_root=root, test_fraction=0.5)
    assert torch.equal(first_images, again.train.images) and torch.equal(first.test.labels, again.test.labels)


def test_unfinished_folder_cache_is_not_read(tmp_path):
    """No .json beside the .npy means a write was cut short: the folder is decoded again, silently."""
    root = _folder(tmp_path)
    load_dataset("imagefolder", data_root=root)
    npy = _folder_cache_path(root, None, None)
    npy.with_suffix(".json").unlink()
    np.save(npy, np.zeros((4, 1, 8, 8), np.uint8))
    again = load_dataset("imagefolder", data_root=root, test_fraction=0.0)
    assert sorted(again.train.images[:, 0, 0, 0].tolist()) == [0, 30, 60, 90]
    assert npy.with_suffix(".json").is_file()


def _cifar_archive(tmp_path, per_batch):
    source = make_cifar(tmp_path / "src", per_batch=per_batch)
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz", compresslevel=0) as tar:  # stored: quick to make
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def test_killed_extraction_leaves_nothing_half_done(tmp_path):
    """SIGKILL an extraction at random instants: the final folder is always absent or complete, and a normal
    start afterwards loads the data."""
    archive = _cifar_archive(tmp_path, per_batch=1000)  # 18 MB of batches: long enough to kill mid-way
    cache = tmp_path / "cache" / "cnnlab"
    start = time.perf_counter()
    safe_extract(archive, tmp_path / "timing")
    seconds = time.perf_counter() - start
    fork = multiprocessing.get_context("fork")
    for delay in [0.0] + [random.Random(k).uniform(0, seconds) for k in range(3)]:
        child = fork.Process(target=safe_extract, args=(archive, cache))
        child.start()
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        final = cache / "cifar-10-batches-py"
        assert not final.exists() or len(list(final.iterdir())) == 7
    data = load_dataset("cifar10", data_root=archive.parent, download=False)
    assert len(data.train) == 5000 and len(data.test) == 1000 and data.source == str(final)


def test_corrupt_unpacked_batch_is_named_and_unpacked_again(tmp_path):
    archive = _cifar_archive(tmp_path, per_batch=40)
    first = load_dataset("cifar10", data_root=archive.parent, download=False)
    batch = tmp_path / "cache" / "cnnlab" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.warns(UserWarning, match="data_batch_3: .*unpacking .*cifar-10-python.tar.gz again"):
        again = load_dataset("cifar10", data_root=archive.parent, download=False)
    assert torch.equal(first.train.images, again.train.images)
    assert not [p for p in batch.parent.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
