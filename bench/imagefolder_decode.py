"""Decoding a folder of phone photos to 128x128: cnnlab's streaming decoder against the old way, timed in one run.

The old way (kept below as the baseline) decodes every photo at full size, keeps them all to find the most common
size and mode, then resizes them one by one on one core. cnnlab reads sizes from the headers, lets the JPEG
decoder reduce each photo to near the target size, resizes it at once and streams it into one preallocated array,
on all cores. Each way runs in a fresh child process, which reports its own peak RSS.

Target: peak RSS < 1 GiB and >= 30 images/s for 1000 12-MP JPEGs on a 2-core machine. The old way keeps every
decoded photo (36 MB each), so it runs on at most --baseline-count of them; images/s is what is compared.

    .venv/bin/python bench/imagefolder_decode.py [--count 1000] [--folder DIR] [--baseline-count 120]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SIZE = 128
TARGET_RSS, TARGET_RATE = 1 << 30, 30.0
CACHE = Path("/tmp/cnnlab-bench-photos")


def make_photo(path: Path, seed: int) -> None:
    """A 4000x3000 quality-90 JPEG that compresses like a photo: smooth colour gradients plus noise (~3 MB)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    x, y = np.linspace(0, 1, 400, dtype=np.float32)[None], np.linspace(0, 1, 300, dtype=np.float32)[:, None]
    angle, freq = rng.uniform(0, np.pi), rng.uniform(1, 4, 2)
    ramp = np.cos(angle) * x + np.sin(angle) * y  # [300, 400]
    waves = np.sin(2 * np.pi * freq[0] * x + rng.uniform(0, 6)) * np.cos(2 * np.pi * freq[1] * y)
    low, high = rng.uniform(20, 210, (2, 3)).astype(np.float32)
    small = (low + (high - low) * ramp[..., None] + 25 * waves[..., None]).clip(0, 231).astype(np.uint8)
    picture = np.array(Image.fromarray(small).resize((4000, 3000), Image.BILINEAR))  # smooth, made fast at 1/10
    picture += rng.integers(0, 24, picture.shape, dtype=np.uint8)  # sensor noise (std 6.9), never past 255
    Image.fromarray(picture).save(path, quality=90)


def photo_folder(count: int) -> Path:
    """`count` photos in two classes under /tmp, made once (in parallel) and reused by later runs."""
    paths = [CACHE / f"class{i % 2}" / f"{i:05d}.jpg" for i in range(count)]
    missing = [(p, i) for i, p in enumerate(paths) if not p.is_file()]
    for folder in {p.parent for p in paths}:
        folder.mkdir(parents=True, exist_ok=True)
    if missing:
        print(f"making {len(missing)} 12-MP JPEGs in {CACHE} (once)", flush=True)
        with ProcessPoolExecutor() as pool:
            list(pool.map(_make_atomically, *zip(*missing), chunksize=4))
    return _subset(paths)


def _make_atomically(path: Path, seed: int) -> None:
    tmp = path.with_suffix(".tmp.jpg")
    make_photo(tmp, seed)
    tmp.rename(path)


def _subset(paths: list[Path]) -> Path:
    """A folder of links to exactly these photos, so a smaller --count reads a smaller folder."""
    folder = CACHE.with_name(f"{CACHE.name}-{len(paths)}")
    for p in paths:
        link = folder / p.parent.name / p.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(p)
    return folder


def old_read_image_folder(root: Path, image_size: int):
    """The old decoder, for comparison: full decode of every image, all kept, then resized on one core."""
    from PIL import Image

    from cnnlab.data.formats import list_image_folder
    from cnnlab.images import resize_center_crop, to_mode

    classes, files = list_image_folder(root)
    decoded = []
    for path, _ in files:
        with Image.open(path) as im:
            im.load()
            decoded.append(im.copy())
    channels = 1 if Counter(im.mode in ("L", "1", "I;16", "I", "LA") for im in decoded).most_common(1)[0][0] else 3
    arrays = [np.asarray(resize_center_crop(to_mode(im, channels), image_size)) for im in decoded]
    return np.stack(arrays).reshape(len(arrays), image_size, image_size, channels).transpose(0, 3, 1, 2)


def child(way: str, folder: Path) -> None:
    """Run one way in this (fresh) process; print images, seconds and its peak RSS before and after as JSON (the
    new way's worker processes each hold one reduced photo at a time, and are not counted)."""
    from cnnlab.data.formats import read_image_folder

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if way == "old":
        images = old_read_image_folder(folder, SIZE)
    else:
        images = read_image_folder(folder, image_size=SIZE)[0]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(images=len(images), seconds=seconds, floor=floor, peak=peak)))


def measure(way: str, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", way, "--folder", str(folder)], check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rate"] = result["images"] / result["seconds"]
    mib = 1 << 20
    print(
        f"{way:>3}: {result['images']} images in {result['seconds']:.1f} s = {result['rate']:.1f} images/s, "
        f"peak RSS {result['peak'] / mib:.0f} MiB ({result['floor'] / mib:.0f} MiB after imports)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="how many 12-MP JPEGs to make (default 1000)")
    parser.add_argument("--folder", type=Path, help="decode this class-per-folder tree instead of made photos")
    parser.add_argument("--baseline-count", type=int, default=120, help="photos the old way decodes (default 120)")
    parser.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.folder)
    folder = args.folder or photo_folder(args.count)
    baseline = args.folder or photo_folder(min(args.count, args.baseline_count))
    new, old = measure("new", folder), measure("old", baseline)
    print(
        f"new / old: {new['rate'] / old['rate']:.1f}x images/s; peak RSS {new['peak'] / old['peak']:.2f}x "
        f"(old on {old['images']}, new on {new['images']} images)"
    )
    ok = new["peak"] < TARGET_RSS and new["rate"] >= TARGET_RATE
    print(f"target (peak RSS < 1 GiB, >= {TARGET_RATE:.0f} images/s): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
