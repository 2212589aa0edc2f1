"""Bad data and bad images, as a table: each input that once gave a traceback, a silent wrong answer or a dead
process now gives one line naming it (exit 2 on the command line), and leaves every file on disk as it was.
Below the tables: photos read upright, 16-bit and odd PIL modes read right, and the image-folder cache on a full
disk, after a killed run, and with its worker processes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import learnable_images, make_cifar, make_mnist, write_idx
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.data.datasets import remove_stale_temporaries
from cnnlab.errors import CnnlabError
from cnnlab.images import decode_square, open_image, to_mode

pytestmark = pytest.mark.usefixtures("one_thread")


def photo_folder(root: Path, classes=("c0", "c1"), per_class=6, size=(20, 16)) -> Path:
    for k in range(per_class * len(classes)):
        folder = root / classes[k % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(k).integers(0, 255, (size[1], size[0], 3)).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data sets broken in one way each, a good MNIST and photo folder, and a finished run to predict with."""
    base = tmp_path_factory.mktemp("bad-data")
    make_mnist(base / "mnist", n_train=200, n_test=50)
    photo_folder(base / "photos")
    photo_folder(base / "one-class", classes=("only",), per_class=4)
    photo_folder(base / "looped")
    os.symlink(base / "looped", base / "looped" / "c2")  # a class folder that is the root again
    photo_folder(base / "linked-file")
    os.symlink(base / "linked-file" / "c0" / "0.png", base / "linked-file" / "c1" / "again.png")
    root = make_cifar(base / "cifar-float-label", per_batch=8)
    images, labels = learnable_images(8, 32, 3, 10, 0)
    batch = {b"labels": [*map(int, labels[:-1]), 3.7], b"data": images.reshape(8, -1)}
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    root = make_cifar(base / "cifar-nine-names", per_batch=8)
    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(9)]}, protocol=2)
    )
    raw = make_mnist(base / "mnist-32", n_train=60, n_test=20) / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((20, 32, 32), np.uint8))
    raw = make_mnist(base / "mnist-empty", n_train=60, n_test=20) / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    run = cnnlab.train(
        "mlp",
        "mnist",
        data_root=str(base / "mnist"),
        epochs=1,
        batch_size=64,
        progress=False,
        folder=base / "runs" / "mlp",
        log=lambda line: None,
    )
    return base, run


def tree_hash(folder: Path) -> str:
    """Every file's path and bytes (links as their target): 'nothing on disk changed' as one comparable value."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# (what is wrong, the command line after `cnnlab`, a fragment of the one line it must print)
TRAIN = ["train", "mlp", "--epochs", "1", "--no-progress"]
COMMANDS = [
    (
        "one class folder",
        [*TRAIN, "--dataset", "imagefolder", "--data-root", "{base}/one-class"],
        "only one class folder holds images (only); a classifier needs at least two",
    ),
    (
        "class folder linked to the root",
        [*TRAIN, "--dataset", "imagefolder", "--data-root", "{base}/looped"],
        "looped/c2: a link to {base}/looped, which holds the data folder itself",
    ),
    (
        "one file linked into two classes",
        [*TRAIN, "--dataset", "imagefolder", "--data-root", "{base}/linked-file"],
        "are the same file (a link)",
    ),
    (
        "validation split of no image",
        [*TRAIN, "--data-root", "{base}/mnist", "--valid-fraction", "1e-9"],
        "validation fraction (--valid-fraction) 1e-09 holds out 0 of the 200 images; use a fraction from 0.0025",
    ),
    (
        "a crop as large as the images",
        [*TRAIN, "--data-root", "{base}/mnist", "--augment", "crop=1000000"],
        "augmentation crop=1e+06 is too large for the 28x28 images; use crop=4 (at most 27)",
    ),
    (
        "augmentation junk",
        [*TRAIN, "--data-root", "{base}/mnist", "--augment", "flip,junk=3"],
        "unknown augmentation 'junk=3'",
    ),
    (
        "preview of a crop as large as the images",
        [
            "augment-preview",
            "--dataset",
            "mnist",
            "--data-root",
            "{base}/mnist",
            "--augment",
            "crop=28",
            "--out",
            "{out}/a.png",
        ],
        "augmentation crop=28 is too large for the 28x28 images",
    ),
    (
        "image size no memory can train",
        [
            "train",
            "lesson-cnn",
            "--dataset",
            "imagefolder",
            "--data-root",
            "{base}/photos",
            "--image-size",
            "5000",
            "--no-progress",
        ],
        "lesson-cnn for 5000x5000 images has 12,500,025,086 parameters",
    ),
    (
        "CIFAR label 3.7",
        ["train", "lesson-cnn", "--epochs", "1", "--no-progress", "--data-root", "{base}/cifar-float-label"],
        "data_batch_2: CIFAR label 3.7 (sample 7) is not a whole number",
    ),
    (
        "CIFAR batches.meta of 9 names",
        ["train", "lesson-cnn", "--epochs", "1", "--no-progress", "--data-root", "{base}/cifar-nine-names"],
        "batches.meta names 9 class(es)",
    ),
    (
        "MNIST test images of another size",
        [*TRAIN, "--data-root", "{base}/mnist-32"],
        "the training images are 28x28, the test images 32x32",
    ),
    (
        "MNIST training set of no image",
        [*TRAIN, "--data-root", "{base}/mnist-empty"],
        "the mnist training set holds no images",
    ),
    (
        "a --batch-size the user gave, larger than the set",
        [*TRAIN, "--dataset", "imagefolder", "--data-root", "{base}/photos", "--batch-size", "100"],
        "batch size 100 is larger than the 8 training images; use --batch-size 8 or less",
    ),
]


@pytest.mark.parametrize("why, argv, expected", COMMANDS, ids=[row[0] for row in COMMANDS])
def test_bad_data_on_the_command_line_is_one_line(world, tmp_path, capsys, why, argv, expected):
    base, _ = world
    out = tmp_path / "out"
    before = tree_hash(base)
    argv = [a.format(base=base, out=out) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(out)]
    started = time.perf_counter()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (why, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected.format(base=base) in lines[0], lines[0]
    assert tree_hash(base) == before  # the data and the run are as they were
    assert not out.exists()  # no run folder, no picture
    assert not list((tmp_path / "cache").rglob("*.npy")) or "--image-size" not in argv  # nothing decoded
    assert time.perf_counter() - started < 60


# (what is wrong, a call on a trained run, a fragment of the one-line error)
def mixed_shapes(run):
    return run.predict([np.zeros((1, 28, 28), np.uint8), np.zeros((1, 32, 32), np.uint8)])


API = [
    ("None", lambda run: run.predict(None), "images: got NoneType; give image files, PIL images, or pixels"),
    ("empty list", lambda run: run.predict([]), "no images given (an empty list)"),
    (
        "top_k as text",
        lambda run: run.predict(np.zeros((1, 28, 28), np.uint8), top_k="3"),
        "top-k '3': must be a whole number",
    ),
    ("mixed shapes", mixed_shapes, "image 1 is [1, 32, 32] but image 0 is [1, 28, 28]"),
    (
        "files mixed with arrays",
        lambda run: run.predict(["a.png", np.zeros((1, 28, 28), np.uint8)]),
        "a list mixes files or PIL images with arrays",
    ),
    ("bool", lambda run: run.predict(np.ones((1, 28, 28), bool)), "images: bool is not a pixel type"),
    ("int8 -3", lambda run: run.predict(np.full((1, 28, 28), -3, np.int8)), "int8 values from -3 to -3"),
    ("int64 300", lambda run: run.predict(np.full((1, 28, 28), 300)), "int64 values from 300 to 300"),
    (
        "uint16 40000",
        lambda run: run.probabilities(torch.full((1, 28, 28), 40000, dtype=torch.int32)),
        "int32 values from 40000 to 40000, but pixels are 0..255 (16-bit images: divide by 257 first)",
    ),
    ("uint16 array", lambda run: run.predict(np.full((1, 28, 28), 40000, np.uint16)), "uint16 values from 40000"),
    ("complex", lambda run: run.predict(np.zeros((1, 28, 28), complex)), "complex128 is not a pixel type"),
    (
        "float above 1",
        lambda run: run.predict(np.full((1, 28, 28), 1.5)),
        "float64 values from 1.5 to 1.5, but float images are read as 0..1",
    ),
    ("float NaN", lambda run: run.predict(np.full((1, 28, 28), np.nan, np.float32)), "float32 holds NaN"),
    ("a number", lambda run: run.predict(42), "images: got int"),
    ("empty array", lambda run: run.predict(np.zeros((0, 1, 28, 28), np.uint8)), "images: an empty array"),
    (
        "augment=123",
        lambda run: cnnlab.train(
            "mlp",
            "mnist",
            data_root=str(run.folder.parent.parent / "mnist"),
            augment=123,
            folder=run.folder.parent / "new",
        ),
        "augment 123: must be",
    ),
]


@pytest.mark.parametrize("why, call, expected", API, ids=[row[0] for row in API])
def test_bad_input_to_the_api_is_one_line(world, why, call, expected):
    base, run = world
    before = tree_hash(base)
    with pytest.raises(CnnlabError) as refused:
        call(run)
    assert expected in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
    assert tree_hash(base) == before


def test_unambiguous_arrays_are_the_pixels_they_say(world):
    """Whole numbers 0..255 of any integer type, and floats 0..1, are read as the same uint8 pixels."""
    _, run = world
    pixels = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28)).astype(np.uint8)
    expected = run.probabilities(pixels)
    assert np.array_equal(run.probabilities(pixels.astype(np.int64)), expected)
    assert np.array_equal(run.probabilities(torch.from_numpy(pixels).to(torch.int16)), expected)
    assert np.array_equal(run.probabilities(pixels.astype(np.float32) / 255), expected)
    assert np.array_equal(run.probabilities(list(pixels)), expected)
    one = Image.fromarray(pixels[0, 0])
    assert run.predict(one) == run.predict([one])  # a single picture needs no list


# --- images read as every viewer shows them ---------------------------------------------------------------

# EXIF orientation -> how the stored pixels are turned to be seen as intended
TURNS = {
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def sideways_photo(path: Path, orientation: int) -> np.ndarray:
    """A 16x16 picture with no symmetry, stored unturned with an EXIF orientation; returns what a viewer shows."""
    stored = np.zeros((16, 16, 3), np.uint8)
    stored[:8, :4] = 255  # a bar in the top-left corner, along the left edge
    stored[12:, 10:, 0] = 200  # a red block in the bottom-right
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    return np.ascontiguousarray(TURNS[orientation](stored))


@pytest.mark.parametrize("orientation", sorted(TURNS))
def test_phone_photos_are_read_upright_everywhere(tmp_path, orientation):
    seen = sideways_photo(tmp_path / "photo.png", orientation)
    assert np.array_equal(decode_square(tmp_path / "photo.png", 3, 16).transpose(1, 2, 0), seen)  # image folders
    assert np.array_equal(np.asarray(open_image(tmp_path / "photo.png")), seen)  # predict, uploads
    assert np.array_equal(np.asarray(open_image((tmp_path / "photo.png").read_bytes())), seen)
    with Image.open(tmp_path / "photo.png") as image:  # a PIL image given
        assert np.array_equal(np.asarray(to_mode(image, 3)), seen)


def test_the_folder_reader_and_its_cache_read_photos_upright(tmp_path):
    root = photo_folder(tmp_path / "photos", size=(16, 16))
    seen = sideways_photo(root / "c0" / "0.png", 6)
    for _ in range(2):  # decoded, then read back from the cache
        data = load_dataset("imagefolder", data_root=root, test_fraction=0.0)
        index = next(
            i
            for i in range(len(data.train))
            if data.train.labels[i] == 0
            and np.array_equal(data.train.pixels(slice(i, i + 1))[0].numpy().transpose(1, 2, 0), seen)
        )
        assert index is not None


@pytest.mark.parametrize("mode, dtype", [("I;16B", ">u2"), ("I;16", "<u2"), ("I;16L", "<u2")])
def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path, mode, dtype):
    values = np.array([[0, 257, 40000, 65535]], np.uint16)
    image = Image.frombytes(mode, (4, 1), values.astype(dtype).tobytes())
    expected = [[0, 1, 156, 255]]  # v / 257, rounded
    assert np.asarray(to_mode(image, 1)).tolist() == expected
    assert np.asarray(to_mode(image, 3))[..., 1].tolist() == expected
    image.save(tmp_path / "deep.tif")
    assert decode_square(tmp_path / "deep.tif", 1, 4).shape == (1, 4, 4)


def test_lab_and_premultiplied_modes_are_converted(world):
    _, run = world
    white = to_mode(Image.new("LAB", (4, 4), (255, 128, 128)), 3)  # L at full, a and b neutral
    assert np.asarray(white).min() >= 250
    red = np.asarray(to_mode(Image.new("LAB", (4, 4), (138, 208, 195)), 3))[0, 0]  # L 54, a 80, b 67
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, red  # not L, a, b copied into R, G, B
    half = to_mode(Image.new("La", (4, 4), (60, 255)), 1)  # opaque: the grey as it is
    assert np.asarray(half).tolist() == np.full((4, 4), 60).tolist()
    assert len(run.predict([Image.new("La", (28, 28), (60, 255)), Image.new("LAB", (28, 28))])) == 2


# --- the image-folder cache: a full disk, a killed run, its workers ---------------------------------------


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """The free-space check refuses first; a disk that fills between check and write refuses at the reservation
    (posix_fallocate's ENOSPC), never with a SIGBUS when a page of the memory map is written."""
    root = photo_folder(tmp_path / "photos")
    cache = tmp_path / "cache" / "cnnlab" / "imagefolder"

    class Tiny:
        free = 100_000

    monkeypatch.setattr("cnnlab.data.formats.shutil.disk_usage", lambda path: Tiny)
    with pytest.raises(CnnlabError, match=r"the decoded images need \d+ MB on this disk and 0 MB are free"):
        load_dataset("imagefolder", data_root=root, image_size=300)
    assert not cache.exists() or list(cache.iterdir()) == []
    monkeypatch.undo()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cnnlab.data.formats.os.posix_fallocate", full)
    with pytest.raises(CnnlabError, match="the decoded images need"):
        load_dataset("imagefolder", data_root=root)
    assert list(cache.iterdir()) == []


def test_a_real_full_disk_is_one_line(tmp_path):
    """On a 1 MB tmpfs (root only): the cache of 40 photos at 128x128 (2 MB) is refused in one line, nothing left."""
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root); the monkeypatched test above covers the logic")
    try:
        root = photo_folder(tmp_path / "photos", per_class=20)
        (disk / "filler").write_bytes(b"\0" * 600_000)  # the check passes for 1 channel, not 3
        env = {**os.environ, "XDG_CACHE_HOME": str(disk), "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cnnlab",
                "train",
                "mlp",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(root),
                "--image-size",
                "64",
                "--epochs",
                "1",
                "--no-progress",
                "--out",
                str(tmp_path / "runs"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "the decoded images need" in done.stderr and "Traceback" not in done.stderr
        assert sorted(p.name for p in disk.rglob("*") if p.is_file()) == ["filler"]
    finally:
        subprocess.run(["umount", str(disk)])


def test_temporary_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    orphan, recent, busy = (folder / f".{name}.npy.x1.tmp" for name in ("orphan", "recent", "busy"))
    for path in (orphan, recent, busy):
        path.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(orphan, (hour_ago, hour_ago))
    os.utime(busy, (hour_ago, hour_ago))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import fcntl, sys, time
        f = open({str(busy)!r}, "rb"); fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        remove_stale_temporaries(folder)
        assert not orphan.exists() and recent.exists() and busy.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_build_leaves_files_the_next_run_removes(tmp_path):
    """SIGKILL in the middle of decoding: the temporary .npy stays (nothing can run), unlocked; the next load
    removes it once it is a minute old, and builds the cache."""
    root = photo_folder(tmp_path / "photos", per_class=40, size=(200, 160))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from cnnlab.data import formats, load_dataset
        slow = formats.decode_square
        def decode(*args):
            time.sleep(0.05)
            return slow(*args)
        formats.decode_square, formats.PARALLEL_FROM = decode, 10 ** 9     # in this process, slowly
        load_dataset("imagefolder", data_root={str(root)!r})
        """),
        ],
        env=env,
    )
    cache = tmp_path / "cache" / "cnnlab" / "imagefolder"
    deadline = time.time() + 60
    while not list(cache.glob(".*.npy.*.tmp")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    (orphan,) = cache.glob(".*.npy.*.tmp")
    os.utime(orphan, (time.time() - 3600,) * 2)
    data = load_dataset("imagefolder", data_root=root)
    assert len(data.train) + len(data.test) == 80
    assert not orphan.exists() and not list(cache.glob("*.tmp"))


def test_decode_workers_end_with_the_process_that_started_them(tmp_path):
    """A process killed while its pool decodes (SIGKILL, or SIGBUS on a full disk): its workers end within
    seconds, so a pipe they inherited (`cnnlab train ... | tail`) reaches its end."""
    script = textwrap.dedent("""
        import operator, os, time
        from cnnlab.data import formats
        formats.PARALLEL_FROM = 1
        with formats._parallel_map(100) as parallel_map:
            print(*sorted(set(parallel_map(operator.call, [os.getpid] * 64))), flush=True)
            time.sleep(300)
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in child.stdout.readline().split()]
    assert workers and child.pid not in workers
    child.kill()
    child.wait()
    closed = pipe_closes_within(child.stdout, 15)  # end of the pipe: every holder of it has exited
    alive = [pid for pid in workers if running(pid)]
    for pid in alive:  # what the bug left behind: the workers and their forkserver
        with contextlib.suppress(OSError):
            os.kill(int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1]), signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
    assert closed and not alive, alive


def pipe_closes_within(stream, seconds: float) -> bool:
    deadline = time.time() + seconds
    while select.select([stream], [], [], max(0.0, deadline - time.time()))[0]:
        if not os.read(stream.fileno(), 4096):
            return True
    return False


def running(pid: int) -> bool:
    """The process exists and is not a zombie (one that ended, waiting for a parent to collect it)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False


def test_an_image_size_past_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    root = photo_folder(tmp_path / "photos")
    monkeypatch.setattr("cnnlab.data.formats.decode_square", lambda *args: pytest.fail("decoded"))
    with pytest.raises(CnnlabError, match="image size 9000 gives 81 Mpx per image, over cnnlab's limit of 64 Mpx"):
        load_dataset("imagefolder", data_root=root, image_size=9000)
