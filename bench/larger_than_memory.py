"""An image folder whose decoded size is twice the memory cnnlab is given trains, in a cgroup memory limit.

The folder's decoded images (uint8, N x 3 x S x S) are written straight into the decoded-image cache file and
memory-mapped from it, so neither decoding nor training holds them in memory: pages are read as batches need them
and dropped under pressure. The baseline, run first in the same cgroup, is the way cnnlab read folders before the
cache was mapped (np.load of the whole array): it must run out of memory, or the limit proves nothing.

Needs root and the cgroup-v1 memory controller (/sys/fs/cgroup/memory). Takes ~15 minutes on 2 cores (77,672
images are made and decoded once, then one epoch of lesson-cnn at 96x96).

    .venv/bin/python bench/larger_than_memory.py [--limit-mb 1024] [--size 96]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CGROUP = Path("/sys/fs/cgroup/memory/cnnlab-bench")
FOLDER = Path("/tmp/cnnlab-bench-larger-than-memory")


def make_folder(count: int, size: int) -> None:
    """`count` JPEGs of size x size in 10 class folders: noise with a class-coloured square, ~10 KB each."""
    from PIL import Image

    if len(list(FOLDER.rglob("*.jpg"))) == count:
        return
    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % 10
        pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        pixels[size // 4 : size // 2, (label * size) // 12 : (label * size) // 12 + size // 4] = (
            230,
            40 * (label % 5),
            90,
        )
        (FOLDER / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(FOLDER / f"class{label}" / f"{i:06d}.jpg", quality=85)


def in_cgroup(limit: int, argv: list[str], env: dict) -> tuple[int, float, int, str]:
    """Run argv in a fresh cgroup limited to `limit` bytes; (exit code, seconds, peak bytes, last stderr lines)."""
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "memory.limit_in_bytes").write_text(str(limit))
    if (CGROUP / "memory.memsw.limit_in_bytes").exists():  # no swapping out of the limit either
        (CGROUP / "memory.memsw.limit_in_bytes").write_text(str(limit))
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: (CGROUP / "cgroup.procs").write_text(str(os.getpid())),
    )
    _, err = process.communicate()
    seconds = time.perf_counter() - start
    peak = int((CGROUP / "memory.max_usage_in_bytes").read_text())
    for _ in range(100):  # the exited processes leave the group a moment later
        try:
            CGROUP.rmdir()
            break
        except OSError:
            time.sleep(0.1)
    return process.returncode, seconds, peak, "\n".join(err.strip().splitlines()[-2:])


BASELINE = """
import numpy as np, sys
from cnnlab.data import datasets
original = datasets._read_folder_cache
def whole_array(cache):                      # the old reading: the whole decoded array in memory
    found = original(cache)
    return (np.array(found[0]), *found[1:]) if found else None
datasets._read_folder_cache = whole_array
from cnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mb", type=int, default=1024)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    limit = args.limit_mb << 20
    count = 2 * limit // (3 * args.size * args.size)  # decoded size: twice the limit
    make_folder(count, args.size)
    env = {**os.environ, "XDG_CACHE_HOME": "/tmp/cnnlab-bench-cache"}
    train = [
        "train",
        "lesson-cnn",
        "--dataset",
        "imagefolder",
        "--data-root",
        str(FOLDER),
        "--image-size",
        str(args.size),
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--no-progress",
        "--out",
        "/tmp/cnnlab-bench-runs",
        "--overwrite",
        "--name",
        "larger-than-memory",
    ]
    print(
        f"{count:,} images of 3x{args.size}x{args.size}: {count * 3 * args.size**2 / 2**20:,.0f} MiB decoded, "
        f"cgroup limit {args.limit_mb:,} MiB"
    )
    code, seconds, peak, tail = in_cgroup(limit, [sys.executable, "-m", "cnnlab", *train], env)
    print(
        f"cnnlab (decode into the cache file, then train from its memory map): exit {code} in {seconds:.0f} s, "
        f"peak {peak / 2**20:,.0f} MiB (page cache included){'' if code == 0 else ' | ' + tail}"
    )
    code, seconds, peak, tail = in_cgroup(limit, [sys.executable, "-c", BASELINE, *train], env)
    print(
        f"baseline (the cached array read whole into memory): exit {code} in {seconds:.0f} s, "
        f"peak {peak / 2**20:,.0f} MiB{'' if code == 0 else ' (killed: ' + str(-code) + ')' if code < 0 else ''}"
    )


if __name__ == "__main__":
    main()
