"""Readers for the on-disk formats: IDX (MNIST, Fashion-MNIST), CIFAR python batches, image folders.

Each returns numpy uint8 images in [N, C, H, W] layout and int64 labels, and turns any malformed file into a
CnnlabError that names the file and what to do about it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import math
import multiprocessing
import os
import pickle
import select
import shutil
import threading
import warnings
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_path
from cnnlab.images import MAX_PIXELS, SIXTEEN_BIT, attempt, decode_square, image_header

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


MAX_IDX_BYTES = 1 << 30  # 1 GiB: MNIST's largest file holds 47 MB; a header promising more is corrupt or a bomb


def _open_maybe_gzip(raw):
    """The file itself, or a streaming view of its inflated bytes when it is gzipped: nothing is inflated yet."""
    gzipped = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw) if gzipped else raw


def _read_exactly(stream, n: int) -> np.ndarray:
    """Exactly n bytes into a fresh writable array (no intermediate copy); fewer means the file is truncated."""
    out = np.empty(n, dtype=np.uint8)
    view, filled = memoryview(out), 0
    while filled < n:
        got = stream.readinto(view[filled:])
        if not got:
            raise EOFError(f"ended after {filled} of {n} bytes")
        filled += got
    return out


def _read_idx_stream(path: Path, stream) -> np.ndarray:
    head = stream.read(4)
    if len(head) < 4 or head[:3] != b"\x00\x00\x08" or not 1 <= head[3] <= 4:
        raise CnnlabError(
            f"{path}: not an IDX file of unsigned bytes (wrong magic number {head.hex()}); "
            "expected MNIST-style idx3-ubyte/idx1-ubyte files"
        )
    dims = tuple(int(d) for d in np.frombuffer(_read_exactly(stream, 4 * head[3]), dtype=">u4"))
    size = math.prod(dims)  # Python ints: a product of huge sizes cannot overflow
    if size > MAX_IDX_BYTES:
        raise CnnlabError(
            f"{path}: IDX header promises {dims} = {size / 2**30:.1f} GiB, over cnnlab's limit of "
            f"{MAX_IDX_BYTES / 2**30:.0f} GiB; the file is corrupt: delete it and download it again"
        )
    data = _read_exactly(stream, size)
    if stream.read(1):
        raise CnnlabError(
            f"{path}: more data than the IDX header's {dims} promises; "
            "the file is corrupt: delete it and download it again"
        )
    return data.reshape(dims)


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic 0x0000 + type byte + rank byte, big-endian sizes, data.
    The header is checked before anything else is read or inflated, so a gzip bomb costs nothing."""
    path = Path(path)
    try:
        with open(path, "rb") as raw, _open_maybe_gzip(raw) as stream:
            return _read_idx_stream(path, stream)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise CnnlabError(f"{path}: corrupt or truncated file ({e}); delete it and download it again") from None


def check_labels(path: Path, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels must name one of the classes: a label out of range is a corrupt file, not a bigger data set."""
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        raise CnnlabError(
            f"{path}: label {labels[bad[0]]} (sample {bad[0]}) is outside 0..{n_classes - 1}; "
            "the file is corrupt: delete it and download it again"
        )
    return labels


def read_idx_pair(images_path: Path, labels_path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CnnlabError(f"{images_path}: {images.shape} images do not match {labels.shape} labels in {labels_path}")
    return images[:, None], check_labels(labels_path, labels.astype(np.int64), n_classes)


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what CIFAR batches contain (dicts, lists, bytes, numpy arrays): a pickle that names anything
    else, such as os.system, is refused before it can run."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


CIFAR_CLASSES = 10


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images [N, 3, 32, 32] uint8, labels [N] int64, through the safe unpickler."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise CnnlabError(
            f"{path}: not a CIFAR batch, or a pickle that tries to run code ({e}); "
            "download the official cifar-10-python archive again"
        ) from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise CnnlabError(f"{path}: corrupt or truncated CIFAR batch ({e}); download it again") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
        or not isinstance(labels, list)
        or len(labels) != len(data)
    ):
        raise CnnlabError(f"{path}: not a CIFAR-10 batch (expected b'data' uint8 [N, 3072] and N b'labels')")
    not_whole = next(
        (i for i, v in enumerate(labels) if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None
    )
    if not_whole is not None:  # np.asarray would make 3.7 a 3 without a word
        raise CnnlabError(
            f"{path}: CIFAR label {labels[not_whole]!r} (sample {not_whole}) is not a whole number; "
            "the file is corrupt: download the archive again"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise CnnlabError(f"{path}: a CIFAR label is out of range; download the archive again") from None
    return data.reshape(-1, 3, 32, 32), check_labels(path, labels, CIFAR_CLASSES)


def read_cifar_meta(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            meta = _CifarUnpickler(f, encoding="bytes").load()
        names = [n.decode() for n in meta[b"label_names"]]
    except Exception as e:  # any malformed meta file is the same user problem
        raise CnnlabError(f"{path}: unreadable CIFAR batches.meta ({e}); download the archive again") from None
    if len(names) != CIFAR_CLASSES or len(set(names)) != len(names):
        raise CnnlabError(
            f"{path}: batches.meta names {len(names)} class(es) ({len(set(names))} different), "
            f"CIFAR-10 has {CIFAR_CLASSES}; the file is corrupt: download the archive again"
        )
    return names


def list_image_folder(root: str | Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Classes are the sub-folders of `root`, sorted; files whose extension looks like an image, any case."""
    root = Path(root)
    if not root.is_dir():
        raise CnnlabError(f"{root}: no such folder; give the folder that holds one sub-folder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    _refuse_linked_twice(root, classes)
    files = [
        (p, c)
        for c in classes
        for p in sorted((root / c).rglob("*"))
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    _refuse_same_file_twice(root, files)
    if not files:
        raise CnnlabError(
            f"{root}: no images found; an image folder holds one sub-folder per class "
            f"(e.g. {root}/cat/001.jpg, {root}/dog/002.png)"
        )
    return classes, files


def _refuse_linked_twice(root: Path, classes: list[str]) -> None:
    """A class folder that is a symlink to the root (or above it, or into another class) would count the same
    images twice, under two labels: refused."""
    real_root = root.resolve()
    real = {c: (root / c).resolve() for c in classes}
    for c, folder in real.items():
        if folder == real_root or folder in real_root.parents:
            raise CnnlabError(
                f"{root / c}: a link to {folder}, which holds the data folder itself (its images would "
                "be counted twice); remove the link or move the class folder in"
            )
    for c, folder in real.items():
        inside = next((o for o in classes if o != c and (real[o] == folder or real[o] in folder.parents)), None)
        if inside:
            raise CnnlabError(
                f"{root / c}: a link into class folder {root / inside} (its images would be counted "
                "twice, under two labels); remove the link"
            )


def _refuse_same_file_twice(root: Path, files: list[tuple[Path, str]]) -> None:
    """A file linked into a second place is one image: counted twice it could be in training and test at once.
    Only links are resolved: a plain file costs one lstat."""
    real = {c: (root / c).resolve() for c in {c for _, c in files}}
    seen: dict[Path, Path] = {}
    for path, c in files:
        key = path.resolve() if path.is_symlink() else real[c] / path.relative_to(root / c)
        if key in seen:
            raise CnnlabError(f"{path} and {seen[key]} are the same file (a link); keep one of them")
        seen[key] = path


GREY_MODES = ("L", "1", "LA", "La", *SIXTEEN_BIT)
PARALLEL_FROM = 64  # files: below this, starting worker processes (~0.3 s) costs more than it saves


@contextlib.contextmanager
def _parallel_map(n_files: int):
    """map() over every core for a big folder; in this process for a small one. Processes, not threads: PIL holds
    the GIL while it decodes a JPEG (measured here: 1.3x the images/s of threads). A forkserver, since a fork of
    this process, which may run torch's threads, could deadlock; the workers import no torch."""
    if n_files < PARALLEL_FROM or os.cpu_count() == 1:
        yield map
        return
    pool = ProcessPoolExecutor(
        os.cpu_count(),
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_die_with,
        initargs=(os.getpid(),),
    )
    try:
        yield functools.partial(pool.map, chunksize=8)
    finally:  # after an error or Ctrl-C, the images not started are not decoded for nothing
        pool.shutdown(cancel_futures=True)


def _die_with(parent: int) -> None:
    """In each worker: exit the moment `parent` ends, however it ends. A worker is the forkserver's child, so
    nothing else tells it; left alive it would hold the terminal's pipe (`cnnlab train ... | tail` would hang)."""
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:  # it has ended already
        os._exit(1)
    except (AttributeError, OSError):  # not Linux 5.3 or later: the pool ends as it always did
        return

    def wait_then_exit():
        select.select([pidfd], [], [])  # readable once the process has ended
        os._exit(1)

    threading.Thread(target=wait_then_exit, daemon=True).start()


def _reserve(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A .npy file of `shape` uint8, memory-mapped, its blocks allocated on disk now: a disk that fills up is then a
    one-line error here, not a SIGBUS that kills the process without a word when a page is written later."""
    need = math.prod(shape) + 4096  # the pixels and the .npy header
    free = shutil.disk_usage(path.parent).free
    if need > free:
        raise CnnlabError(no_room(path.parent, need, free))
    images = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
    try:
        with open(path, "r+b") as file:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise CnnlabError(no_room(path.parent, need, shutil.disk_usage(path.parent).free)) from None
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot preallocate
            raise
    return images


def no_room(folder: Path, need: int, free: int) -> str:
    return (
        f"{folder}: the decoded images need {need / 1e6:,.0f} MB on this disk and {free / 1e6:,.0f} MB are free; "
        "free some space, choose a smaller --image-size, or set XDG_CACHE_HOME to a disk with room"
    )


def check_room(folder: Path, n_images: int, channels: int, size: int) -> None:
    """Refuse, before any image is read, a data set whose decoded pixels cannot fit on the disk of `folder`."""
    need = n_images * channels * size * size
    free = shutil.disk_usage(folder).free if folder.is_dir() else None
    if free is not None and need > free:
        raise CnnlabError(no_room(folder, need, free))


def _decode_all(parallel_map, files, index, channels: int, size: int, root, out=None):
    """Decode with `parallel_map`, straight into one preallocated array (the .npy file `out`, memory-mapped, when
    given: memory then holds a few photos, whatever the folder's size); returns it, the labels and the reasons any
    file was skipped. Rows of skipped files are left at the end and cut off (a view: nothing is copied)."""
    from tqdm import tqdm

    shape = (len(files), channels, size, size)
    images = np.empty(shape, np.uint8) if out is None else _reserve(out, shape)
    labels, n, skipped = np.empty(len(files), dtype=np.int64), 0, []
    decoded = parallel_map(
        attempt, [decode_square] * len(files), [p for p, _ in files], [channels] * len(files), [size] * len(files)
    )
    for (_, class_name), (pixels, why) in tqdm(
        zip(files, decoded), total=len(files), unit="image", desc=f"decoding {root}", leave=False, disable=None
    ):
        if why:
            skipped.append(why)
        else:
            images[n], labels[n], n = pixels, index[class_name], n + 1
    if out is None:
        return images[:n], labels[:n], skipped
    images.flush()
    if n < len(files):  # rows of skipped files: the file is written again without them
        with atomic_path(out) as shorter, open(shorter, "wb") as file:
            np.save(file, images[:n])
    return np.load(out, mmap_mode="r"), labels[:n], skipped


def read_image_folder(
    root: str | Path,
    channels: int | None = None,
    image_size: int | None = None,
    classes: list[str] | None = None,
    out: Path | None = None,
):
    """Decode a class-per-folder tree into one uint8 array [N, C, S, S], on all cores.

    channels: 3 (RGB) or 1 (L); by default the mode most images have. image_size: every image is resized (shorter
    side) and centre-cropped to a square of this size; by default the shorter side of the most common size. Both
    defaults come from the files' headers, so each image is decoded once, reduced at once and written into the
    result: memory is that array plus a photo per core (with `out`, a .npy file to write the array into, not even
    the array). Unreadable files, and files over cnnlab.images' size limits (checked before decoding), are skipped
    and counted in a single warning.
    """
    found_classes, files = list_image_folder(root)
    with_images = sorted({c for _, c in files})
    if classes is None and len(with_images) < 2:  # one class is learned perfectly by always answering it
        raise CnnlabError(
            f"{root}: only one class folder holds images ({with_images[0]}); a classifier needs at "
            f"least two, one sub-folder per class (e.g. {root}/cat, {root}/dog)"
        )
    classes = classes or found_classes
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(c for _, c in files) - set(index))
    if unknown:
        raise CnnlabError(f"{root}: classes {unknown} are not among the training classes {classes}")
    if image_size is not None and image_size**2 > MAX_PIXELS:  # each image would be refused, one by one
        raise CnnlabError(
            f"image size {image_size} gives {image_size**2 / 1e6:,.0f} Mpx per image, over cnnlab's "
            f"limit of {MAX_PIXELS / 1e6:.0f} Mpx; choose a smaller --image-size"
        )
    if out is not None and image_size is not None:  # fewest bytes it could take: one channel
        check_room(out.parent, len(files), channels or 1, image_size)
    with _parallel_map(len(files)) as parallel_map:
        headers = list(parallel_map(attempt, [image_header] * len(files), [p for p, _ in files]))
        skipped = [why for _, why in headers if why]
        readable = [(f, header) for f, (header, _) in zip(files, headers) if header]
        if not readable:
            raise CnnlabError(f"{root}: none of the {len(files)} image file(s) can be read, e.g. {skipped[0]}")
        if channels is None:
            channels = 1 if Counter(mode in GREY_MODES for _, (_, mode) in readable).most_common(1)[0][0] else 3
        if image_size is None:
            image_size = min(Counter(size for _, (size, _) in readable).most_common(1)[0][0])
        images, labels, failed = _decode_all(
            parallel_map, [f for f, _ in readable], index, channels, image_size, root, out
        )
    skipped += failed
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable file(s), e.g. {skipped[0]}", stacklevel=2)
    if not len(images):
        raise CnnlabError(f"{root}: none of the {len(files)} image file(s) could be decoded, e.g. {skipped[0]}")
    return images, labels, classes
