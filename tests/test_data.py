"""The data layer: file formats, finding and downloading, splits, statistics and device batches."""

import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from conftest import learnable_images, make_cifar, make_mnist, write_cifar_batch, write_idx
from PIL import Image

from cnnlab.data import Batches, ImageSet, Preprocess, channel_stats, load_dataset, split
from cnnlab.data.formats import read_cifar_batch, read_idx, read_image_folder
from cnnlab.data.sources import download, md5sum, safe_extract
from cnnlab.errors import CnnlabError


def test_idx_round_trip_gzipped_and_plain(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", array)), array)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", array, compress=False)), array)


def test_idx_wrong_magic_truncated_and_corrupt_gzip(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x03" + bytes(100))
    with pytest.raises(CnnlabError, match="wrong magic number"):
        read_idx(bad)
    path = write_idx(tmp_path / "t", np.zeros((5, 4, 4), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CnnlabError, match="truncated"):
        read_idx(path)
    gz = write_idx(tmp_path / "t.gz", np.zeros((50, 28, 28), np.uint8))
    gz.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(CnnlabError, match="t.gz: corrupt or truncated"):
        read_idx(gz)


def test_cifar_batch_reads_through_the_safe_unpickler(tmp_path):
    images, labels = learnable_images(7, 32, 3, 10, 0)
    write_cifar_batch(tmp_path / "data_batch_1", images, labels)
    x, y = read_cifar_batch(tmp_path / "data_batch_1")
    assert x.shape == (7, 3, 32, 32) and np.array_equal(x, images) and y.tolist() == labels.tolist()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=2))
    with pytest.raises(CnnlabError, match="refusing to load (posix|os).system"):
        read_cifar_batch(path)
    assert not marker.exists()


def test_mnist_found_in_torchvision_layout_and_via_env(tmp_path, monkeypatch):
    root = make_mnist(tmp_path / "d", n_train=30, n_test=10)
    data = load_dataset("mnist", data_root=root, download=False)
    assert data.train.images.shape == (30, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert len(data.test) == 10 and data.classes[3] == "3" and data.source.endswith("MNIST/raw")
    monkeypatch.setenv("CNNLAB_DATA", str(root))
    assert len(load_dataset("mnist", download=False).train) == 30


def test_missing_dataset_offline_names_every_place(tmp_path):
    with pytest.raises(CnnlabError) as info:
        load_dataset("fashion-mnist", data_root=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "cache" in message and "network disabled" in message
    assert "--data-root" in message
    assert not list((tmp_path / "cache").rglob("*.gz"))  # nothing half-downloaded left behind


def test_download_verifies_checksum_and_leaves_nothing_on_mismatch(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"some bytes")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(OSError, match="checksum mismatch"):
        download([source.as_uri()], dest, md5="0" * 32, progress=False)
    assert not dest.exists() and not list(dest.parent.iterdir())
    download(["file:///no/such/file", source.as_uri()], dest, md5=md5sum(source), progress=False)
    assert dest.read_bytes() == b"some bytes"


def test_mnist_download_from_a_mirror(tmp_path, monkeypatch):
    """The whole download path, with a file:// mirror standing in for the web and the real md5 table patched."""
    mirror = make_mnist(tmp_path / "mirror", n_train=20, n_test=10) / "MNIST" / "raw"
    from cnnlab.data import datasets

    spec = dict(
        datasets.IDX_SETS["mnist"],
        mirrors=[mirror.as_uri() + "/"],
        md5={p.name[:-3]: md5sum(p) for p in mirror.iterdir()},
    )
    monkeypatch.setitem(datasets.IDX_SETS, "mnist", spec)
    data = load_dataset("mnist")
    assert len(data.train) == 20 and "cache" in data.source


def test_safe_extract_refuses_path_traversal(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../../escaped.txt")
    with pytest.raises(CnnlabError, match="unsafe archive member"):
        safe_extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_cifar_python_layout(tmp_path):
    data = load_dataset("cifar10", data_root=make_cifar(tmp_path / "c"), download=False)
    assert data.train.images.shape == (200, 3, 32, 32) and len(data.test) == 40 and data.classes[0] == "airplane"


def _save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_image_folder_mixed_modes_and_unreadable_files(tmp_path):
    root = tmp_path / "pets"
    _save(root / "cat" / "a.PNG", Image.new("RGBA", (20, 20), (255, 0, 0, 128)))
    _save(root / "cat" / "b.jpg", Image.new("CMYK", (20, 20), (0, 255, 0, 0)))
    _save(root / "dog" / "c.png", Image.new("L", (20, 20), 200))
    _save(root / "dog" / "d.gif", Image.new("P", (20, 20), 3))
    (root / "dog" / "broken.png").write_bytes(b"not really a png")
    (root / "dog" / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        images, labels, classes = read_image_folder(root)
    assert classes == ["cat", "dog"] and labels.tolist() == [0, 0, 1, 1]
    assert images.shape == (4, 3, 20, 20) and images.dtype == np.uint8
    assert images[2].tolist() == np.full((3, 20, 20), 200).tolist()  # grey -> RGB keeps the value
    assert images[0, 0, 0, 0] > 200 and images[0, 1, 0, 0] > 100  # half-transparent red on white


def test_image_folder_resizes_to_one_size(tmp_path):
    root = tmp_path / "photos"
    _save(root / "a" / "wide.png", Image.new("RGB", (64, 32)))
    _save(root / "b" / "tall.png", Image.new("RGB", (30, 90)))
    images, _, _ = read_image_folder(root, image_size=16)
    assert images.shape == (2, 3, 16, 16)


def test_empty_image_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(CnnlabError, match="no images found"):
        load_dataset("imagefolder", data_root=tmp_path / "empty")


def test_image_folder_train_test_dataset_is_cached(tmp_path):
    for split_name, n in (("train", 6), ("test", 2)):
        for k in range(n):
            _save(tmp_path / "f" / split_name / f"c{k % 2}" / f"{k}.png", Image.new("L", (8, 8), 40 * k))
    first = load_dataset("imagefolder", data_root=tmp_path / "f")
    assert first.shape == (1, 8, 8) and len(first.train) == 6 and len(first.test) == 2
    cached = sorted(p.suffix for p in (tmp_path / "cache" / "cnnlab" / "imagefolder").iterdir())
    assert cached == [".json", ".json", ".npy", ".npy"]  # train and test; no temporary file left behind
    again = load_dataset("imagefolder", data_root=tmp_path / "f")
    assert torch.equal(first.train.images, again.train.images)


def test_split_is_seeded_and_disjoint(mnist_root):
    data = load_dataset("mnist", data_root=mnist_root)
    a_train, a_valid = split(data.train, 0.2, seed=3)
    b_train, b_valid = split(data.train, 0.2, seed=3)
    assert len(a_valid) == 120 and len(a_train) == 480
    assert torch.equal(a_valid.images, b_valid.images)
    assert not torch.equal(split(data.train, 0.2, seed=4)[1].labels, a_valid.labels)


def test_channel_stats_match_numpy_also_on_a_subset():
    images = torch.randint(0, 256, (5000, 3, 5, 5), dtype=torch.uint8)
    everything = ImageSet(images, torch.zeros(5000, dtype=torch.long))
    backwards = torch.arange(4999, 0, -2)
    for part, x in ((everything, images), (everything.subset(backwards), images[backwards])):
        mean, std = channel_stats(part)
        x = x.numpy().astype(np.float64) / 255
        assert np.allclose(mean, x.mean((0, 2, 3))) and np.allclose(std, x.std((0, 2, 3)))
    large = torch.randint(0, 256, (20, 1, 1100, 1100), dtype=torch.uint8)  # read in two chunks...
    large[:13] //= 2  # ...that differ
    mean, std = channel_stats(ImageSet(large, torch.zeros(20, dtype=torch.long)))
    x = large.numpy().astype(np.float64) / 255
    assert np.allclose(mean, x.mean()) and np.allclose(std, x.std())


def test_batches_normalize_shuffle_per_epoch_and_cover_everything(mnist_root):
    data = load_dataset("mnist", data_root=mnist_root).train
    batches = Batches(data, 64, Preprocess(None, (0.5,), (0.25,)), shuffle=True, seed=1)
    x, _ = next(iter(batches))
    assert x.dtype == torch.float32 and x.min() >= (0 - 0.5) / 0.25 - 1e-6 and x.max() <= (1 - 0.5) / 0.25 + 1e-6
    labels_epoch1 = torch.cat([y for _, y in batches])
    assert sorted(labels_epoch1.tolist()) == sorted(data.labels.tolist()) and len(batches) == 10
    assert torch.equal(labels_epoch1, torch.cat([y for _, y in batches]))  # same epoch: same order
    batches.set_epoch(2)
    assert not torch.equal(labels_epoch1, torch.cat([y for _, y in batches]))
    plain = Batches(data, 600, Preprocess.identity())
    assert torch.allclose(next(iter(plain))[0], data.images.float() / 255)
