"""The lesson's CIFAR-10 CNN written by hand, as the lesson writes it, against the registry's `lesson-cnn`: the same
recipe, the same data, trained by cnnlab in the same run, taking turns so that a busy machine slows both alike.
Images/s is training images over the training loop's seconds (validation excluded: it is the same for both).

    .venv/bin/python bench/own_network_speed.py --data-root /tmp/cifar-py [--epochs 1] [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnlab
from cnnlab.data import load_dataset


class Net(nn.Module):            # the lesson notebook's network, line for line
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, 10)
        self.dropout = nn.Dropout(0.25)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.view(-1, 64 * 4 * 4)
        x = self.dropout(x)
        x = F.relu(self.fc1(x))
        x = self.dropout(x)
        x = self.fc2(x)
        return x


def images_per_second(model, args) -> float:
    """Train with lesson-cnn's recipe; training images per second of the epochs' training loops."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        recipe = None if model == "lesson-cnn" else "lesson-cnn"        # lesson-cnn's own, for both
        run = cnnlab.train(model, "cifar10", recipe=recipe, data_root=args.data_root, folder=f"{out}/run",
                           epochs=args.epochs, progress=False, log=lambda line: None)
        total = time.perf_counter() - start
    trained = run.record.data.train_size * args.epochs
    per_epoch = sum(e.seconds for e in run.record.history)
    print(f"  {run.record.model.name:<10} {trained / per_epoch:7.0f} images/s over its epochs "
          f"({per_epoch:.1f} s; {total:.1f} s in all), test accuracy {100 * run.test_accuracy:.2f}%", flush=True)
    return trained / per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="turns each (the median is reported)")
    args = parser.parse_args()
    load_dataset("cifar10", data_root=args.data_root)          # read once, so neither pays the first read
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; lesson-cnn's recipe, {args.epochs} "
          f"epoch(s) per run, {args.rounds} rounds")
    speeds: dict[str, list[float]] = {"registry lesson-cnn": [], "hand-written Net": []}
    for _ in range(args.rounds):
        speeds["registry lesson-cnn"].append(images_per_second("lesson-cnn", args))
        speeds["hand-written Net"].append(images_per_second(Net(), args))
    registry, own = (statistics.median(v) for v in speeds.values())
    print(f"median: registry lesson-cnn {registry:.0f} images/s, hand-written Net {own:.0f} images/s: "
          f"{100 * own / registry:.1f}% of the registry's ({'within' if own >= 0.9 * registry else 'NOT within'} 10%)")


if __name__ == "__main__":
    main()
