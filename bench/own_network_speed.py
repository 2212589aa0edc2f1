"""The lesson's CIFAR-10 CNN written by hand, as the lesson writes it, against the registry's `lesson-cnn`: the same
recipe, the same data, trained by cnnlab in the same run, taking turns so that a busy machine slows both alike.
Images/s: training images over the seconds of cnnlab's training loop for one epoch (validation is not timed).

    .venv/bin/python bench/own_network_speed.py --data-root /tmp/cifar-py [--valid-fraction 0.8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from cnnlab.data import load_dataset
from cnnlab.data.augment import augment_for
from cnnlab.training.assemble import Training
from cnnlab.training.config import make_config
from cnnlab.training.custom import own_config
from cnnlab.training.epochs import train_epoch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lesson_nets import CifarNet as Net  # noqa: E402  (the lesson's CNN as the lesson writes it, kept once there)


def images_per_second(model, data, args) -> float:
    """One training epoch through cnnlab's own loop (`train_epoch`: what `cnnlab.train` runs each epoch, validation
    aside) with lesson-cnn's recipe; training images per second."""
    own = not isinstance(model, str)
    options = dict(data_root=args.data_root, valid_fraction=args.valid_fraction)
    config = own_config(model, "cifar10", "lesson-cnn", **options) if own else make_config(model, "cifar10", **options)
    training = Training(config, "unused", data=data, model=model if own else None)
    batches = training.batches(
        training.train_set, shuffle=True, augment=augment_for(config.recipe.augment, training.preprocess)
    )
    start = time.perf_counter()
    train_epoch(training, batches, 1, progress=False)
    seconds = time.perf_counter() - start
    name = type(model).__name__ if own else model
    print(
        f"  {name:<10} {len(training.train_set) / seconds:7.0f} images/s ({len(training.train_set)} images in "
        f"{seconds:.1f} s; {training.precision}, channels_last {training.channels_last})",
        flush=True,
    )
    return len(training.train_set) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py")
    parser.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="held out, as in training; 0.8 times an epoch of 10,000 images (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="epochs each, taking turns (the median is reported)")
    args = parser.parse_args()
    data = load_dataset("cifar10", data_root=args.data_root)  # read once, for both
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; lesson-cnn's recipe, {args.rounds} rounds")
    speeds: dict[str, list[float]] = {"registry lesson-cnn": [], "hand-written Net": []}
    for _ in range(args.rounds):
        speeds["registry lesson-cnn"].append(images_per_second("lesson-cnn", data, args))
        speeds["hand-written Net"].append(images_per_second(Net(), data, args))
    registry, own = (statistics.median(v) for v in speeds.values())
    print(
        f"median: registry lesson-cnn {registry:.0f} images/s, hand-written Net {own:.0f} images/s: "
        f"{100 * own / registry:.1f}% of the registry's ({'within' if own >= 0.9 * registry else 'NOT within'} 10%)"
    )


if __name__ == "__main__":
    main()
