"""How long `cnnlab filter` takes on a 1024x1024 photo as a whole process, beside `python -c "import cv2"`.

The target is under 1 s with the default options (one kernel: the filtered picture, no matplotlib); the
figure variants are timed too, since importing matplotlib alone costs about 0.3 s. The baseline is timed in
the same run, interleaved with the commands, so a busy machine slows both alike and the ratio stays
meaningful; the CPU time (user + system) shows what a run costs on an idle machine. Medians of several runs.

    .venv/bin/python bench/filter_speed.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cnnlab.filters import sample_image

TARGET_S = 1.0


def make_photo(path: Path) -> None:
    """A 1024x1024 JPEG with photo-like detail: the city sample enlarged, plus a little sensor noise."""
    city = cv2.resize(sample_image("city"), (1024, 1024), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    noisy = np.clip(city + np.random.default_rng(0).normal(0, 6, city.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])  # samples are RGB


def seconds(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one run; cpu (user + system) hardly changes when others load the machine."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command (default: %(default)s)")
    repeat = parser.parse_args().repeat

    cnnlab = [sys.executable, str(Path(sys.executable).with_name("cnnlab"))]
    commands = {
        'python -c "import cv2" (baseline)': [sys.executable, "-c", "import cv2"],
        "cnnlab filter photo.jpg -k sobel-x": cnnlab + ["filter", "photo.jpg", "-k", "sobel-x"],
        "cnnlab filter photo.jpg -k sobel-x --figure": cnnlab + ["filter", "photo.jpg", "-k", "sobel-x", "--figure"],
        "cnnlab filter photo.jpg -k sobel-x -k sobel-y -k laplacian": cnnlab
        + ["filter", "photo.jpg", "-k", "sobel-x", "-k", "sobel-y", "-k", "laplacian"],
        "cnnlab spectrum photo.jpg --keep low": cnnlab + ["spectrum", "photo.jpg", "--keep", "low"],
    }
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_photo(folder / "photo.jpg")
        for command in commands.values():  # warm-up: fill the OS file cache and write .pyc files
            seconds(command, folder)
        times = {name: [] for name in commands}
        for _ in range(repeat):  # interleaved, so load changes hit every command alike
            for name, command in commands.items():
                times[name].append(seconds(command, folder))

    walls = {name: [wall for wall, _ in runs] for name, runs in times.items()}
    cpus = {name: [cpu for _, cpu in runs] for name, runs in times.items()}
    baseline = statistics.median(next(iter(walls.values())))
    print(f"1024x1024 JPEG, {repeat} runs each, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("   wall median (min .. max)    ratio     cpu")
    for name in commands:
        wall = statistics.median(walls[name])
        print(
            f"  {wall:6.3f} s ({min(walls[name]):.3f} .. {max(walls[name]):.3f})  {wall / baseline:5.1f}x  "
            f"{statistics.median(cpus[name]):6.3f} s  {name}"
        )
    default = statistics.median(walls["cnnlab filter photo.jpg -k sobel-x"])
    verdict = "meets" if default < TARGET_S else "MISSES"
    print(f"cnnlab filter with default options: {default:.3f} s wall, {verdict} the {TARGET_S:g} s target")


if __name__ == "__main__":
    main()
