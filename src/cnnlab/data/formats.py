"""Readers for the on-disk formats: IDX (MNIST, Fashion-MNIST), CIFAR python batches, image folders.

Each returns numpy uint8 images in [N, C, H, W] layout and int64 labels, and turns any malformed file into a
CnnlabError that names the file and what to do about it.
"""
from __future__ import annotations

import gzip
import pickle
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.images import resize_center_crop, to_mode

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            return gzip.decompress(f.read()) if head == b"\x1f\x8b" else f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise CnnlabError(f"{path}: corrupt or truncated file ({e}); delete it and download it again") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic 0x0000 + type byte + rank byte, big-endian sizes, data."""
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise CnnlabError(f"{path}: not an IDX file of unsigned bytes (wrong magic number {raw[:4].hex()}); "
                          "expected MNIST-style idx3-ubyte/idx1-ubyte files")
    rank = raw[3]
    header = 4 + 4 * rank
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(raw) != header + int(np.prod(dims)):
        raise CnnlabError(f"{path}: IDX header promises {dims} but the file holds {len(raw) - header} bytes of data; "
                          "the file is truncated or corrupt: delete it and download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CnnlabError(f"{images_path}: {images.shape} images do not match {labels.shape} labels in {labels_path}")
    return images[:, None], labels.astype(np.int64)


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what CIFAR batches contain (dicts, lists, bytes, numpy arrays): a pickle that names anything
    else, such as os.system, is refused before it can run."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images [N, 3, 32, 32] uint8, labels [N] int64, through the safe unpickler."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise CnnlabError(f"{path}: not a CIFAR batch, or a pickle that tries to run code ({e}); "
                          "download the official cifar-10-python archive again") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise CnnlabError(f"{path}: corrupt or truncated CIFAR batch ({e}); download it again") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or not isinstance(labels, list) or len(labels) != len(data):
        raise CnnlabError(f"{path}: not a CIFAR-10 batch (expected b'data' uint8 [N, 3072] and N b'labels')")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def read_cifar_meta(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            meta = _CifarUnpickler(f, encoding="bytes").load()
        return [n.decode() for n in meta[b"label_names"]]
    except Exception as e:  # any malformed meta file is the same user problem
        raise CnnlabError(f"{path}: unreadable CIFAR batches.meta ({e}); download the archive again") from None


def list_image_folder(root: str | Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Classes are the sub-folders of `root`, sorted; files whose extension looks like an image, any case."""
    root = Path(root)
    if not root.is_dir():
        raise CnnlabError(f"{root}: no such folder; give the folder that holds one sub-folder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(p, c) for c in classes for p in sorted((root / c).rglob("*"))
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise CnnlabError(f"{root}: no images found; an image folder holds one sub-folder per class "
                          f"(e.g. {root}/cat/001.jpg, {root}/dog/002.png)")
    return classes, files


def read_image_folder(root: str | Path, channels: int | None = None, image_size: int | None = None,
                      classes: list[str] | None = None):
    """Decode a class-per-folder tree once into one uint8 array.

    channels: 3 (RGB) or 1 (L); by default the mode most images have. image_size: every image is resized (shorter
    side) and centre-cropped to a square of this size; by default the most common size, when images are square.
    Unreadable files are skipped and counted in a single warning.
    """
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    found_classes, files = list_image_folder(root)
    classes = classes or found_classes
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(c for _, c in files) - set(index))
    if unknown:
        raise CnnlabError(f"{root}: classes {unknown} are not among the training classes {classes}")
    decoded, labels, skipped = [], [], []
    for path, class_name in tqdm(files, desc=f"decoding {root}", unit="image", leave=False, disable=None):
        try:
            with Image.open(path) as im:
                im.load()
                decoded.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            skipped.append(path)
            continue
        labels.append(index[class_name])
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable file(s), e.g. {skipped[0]}", stacklevel=2)
    if not decoded:
        raise CnnlabError(f"{root}: none of the {len(files)} image file(s) could be decoded")
    if channels is None:
        channels = 1 if Counter(im.mode in ("L", "1", "I;16", "I", "LA") for im in decoded).most_common(1)[0][0] else 3
    if image_size is None:
        (w, h), _ = Counter(im.size for im in decoded).most_common(1)[0]
        image_size = min(w, h)
    arrays = [np.asarray(resize_center_crop(to_mode(im, channels), image_size)) for im in decoded]
    images = np.stack(arrays).reshape(len(arrays), image_size, image_size, channels).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64), classes
