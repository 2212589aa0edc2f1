"""Training images/s on 1 and 2 processes (torch.distributed, DDP, gloo on CPU; NCCL on GPUs when there are two).

Each configuration trains the same model for 2 epochs on the same random images shaped like its data set, through
`cnnlab train` (1 process) and `cnnlab train --nproc 2` (2 processes: torchrun), each process with its fair share of
the cores (torchrun sets OMP_NUM_THREADS=1; the 1-process run gets all of them). The figure is the 2nd epoch's
training images/s (the 1st pays for start-up), read from each run's record, and the ratio 2 processes / 1.

What 2 cores can show: two processes share the same two cores a single process already uses with two threads, so
the best to expect is 1x; the cost of the gradient all-reduce (gloo over loopback TCP, every step) then shows as a
ratio below 1, larger for models with many weights per image (the MLP) than for convolutional ones. On a machine
with a core or a GPU per process the same code spreads the work.

    .venv/bin/python bench/distributed_scaling.py [--images 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_cifar, make_mnist  # noqa: E402  (the tests' writers of data sets in the real formats)

RUNS = (("mlp", "mnist"), ("lesson-cnn", "cifar10"))


def images_per_second(folder: Path) -> float:
    record = json.loads((folder / "run.json").read_text())
    epoch = record["history"][-1]
    return record["data"]["train_size"] / epoch["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="training images (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_mnist(root, n_train=args.images, n_test=1000)
        make_cifar(root, per_batch=args.images // 5)
        print(f"{'model':<12} {'1 process':>12} {'2 processes':>12} {'ratio':>7}   ({os.cpu_count()} cores)")
        for model, dataset in RUNS:
            speeds = []
            for nproc in (1, 2):
                folder = root / "runs" / f"{model}-{nproc}"
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "cnnlab",
                        "train",
                        model,
                        "--dataset",
                        dataset,
                        "--data-root",
                        str(root),
                        "--epochs",
                        "2",
                        "--nproc",
                        str(nproc),
                        "--no-progress",
                        "--out",
                        str(folder.parent),
                        "--name",
                        folder.name,
                        "--precision",
                        "fp32",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                speeds.append(images_per_second(folder))
            print(f"{model:<12} {speeds[0]:9,.0f}/s {speeds[1]:9,.0f}/s {speeds[1] / speeds[0]:6.2f}x")


if __name__ == "__main__":
    main()
