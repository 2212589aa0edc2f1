"""Time to the lesson's CIFAR-10 accuracy: its recipe against `cnnlab train lesson-cnn`, in the same run; time to
90% (or another target) for `cifar-fast`; and time to 99.6% (or another target) on MNIST for `mnist-cnn`, beside
an epoch of the lesson's MNIST MLP recipe timed in the same run.

The lesson's notebook (as it does it: per-sample PIL flip and rotation(10) then normalize, DataLoader batch 20,
SGD lr 0.01) reaches 76% after 30 epochs: we time one epoch and multiply by 30. cnnlab trains lesson-cnn with its
default recipe, checking test accuracy after every epoch (not counted).

    .venv/bin/python bench/cifar_time_to_accuracy.py --cifar-root DIR [--mnist-root ../shared/data]
    .venv/bin/python bench/cifar_time_to_accuracy.py --cifar-root DIR --fast [--fast-target 0.88]
    .venv/bin/python bench/cifar_time_to_accuracy.py --skip-lesson --mnist-root ../shared/data [--seed 1]
    .venv/bin/python bench/cifar_time_to_accuracy.py --cifar-root DIR --skip-lesson --resnet-device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
from mlp_time_to_accuracy import NotebookDataset
from PIL import Image
from timing import cnnlab_time_to, lesson_epoch_seconds, report

from cnnlab.data import load_dataset


class NotebookCifar(torch.utils.data.Dataset):
    """torchvision's CIFAR10 with RandomHorizontalFlip, RandomRotation(10), ToTensor, Normalize(0.5, 0.5) per
    sample, written with PIL as torchvision does it (nearest-neighbour rotation, its default)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images.permute(0, 2, 3, 1).numpy(), labels.numpy()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i])
        if random.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        image = image.rotate(random.uniform(-10, 10), resample=Image.NEAREST)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        return (x - 0.5) / 0.5, int(self.labels[i])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-root", help="folder holding cifar-10-batches-py/ (make_cifar10_batches.py builds it)")
    parser.add_argument("--mnist-root", help="data root holding MNIST/raw; omit to skip the mnist-cnn part")
    parser.add_argument("--target", type=float, default=0.76)
    parser.add_argument("--seed", type=int, default=0, help="cnnlab's training seed (split, init, batches)")
    parser.add_argument("--skip-lesson", action="store_true", help="skip the lesson-cnn part")
    parser.add_argument("--fast", action="store_true", help="also time cifar-fast to --fast-target")
    parser.add_argument("--fast-recipe", default="default", help="cifar-fast's recipe (default: default)")
    parser.add_argument("--fast-target", type=float, default=0.90)
    parser.add_argument(
        "--fast-valid-fraction",
        type=float,
        default=0.04,
        help="share of the training set cifar-fast holds out (default 0.04, as the README runs it)",
    )
    parser.add_argument("--mnist-recipe", default="default", help="mnist-cnn's recipe (default: default)")
    parser.add_argument("--mnist-target", type=float, default=0.996)
    parser.add_argument("--resnet-device", help="also time resnet18-cifar to 94%% on this device (cuda: a GPU)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    needs_cifar = not args.skip_lesson or args.fast or args.resnet_device
    cifar = load_dataset("cifar10", data_root=args.cifar_root, download=False) if needs_cifar else None
    epoch = (
        None
        if args.skip_lesson
        else lesson_epoch_seconds("lesson-cnn", NotebookCifar(cifar.train.images, cifar.train.labels))
    )
    if epoch:
        lesson = 30 * epoch
        print(f"lesson recipe: {epoch:.1f} s for one epoch -> {lesson:.0f} s for its 30 epochs", flush=True)
        report(
            "cnnlab lesson-cnn, default recipe",
            args.target,
            lesson,
            cnnlab_time_to("lesson-cnn", cifar, args.target, "/tmp/cnnlab-bench-lesson-cnn", seed=args.seed),
        )
    if args.fast:  # the lesson's recipe never gets near 90%: its epoch is the same-run yardstick instead
        result = cnnlab_time_to(
            "cifar-fast",
            cifar,
            args.fast_target,
            "/tmp/cnnlab-bench-cifar-fast",
            recipe_name=args.fast_recipe,
            seed=args.seed,
            valid_fraction=args.fast_valid_fraction,
        )
        report(f"cnnlab cifar-fast, {args.fast_recipe} recipe", args.fast_target, None, result)
        if epoch and result[0] is not None:
            print(
                f"cifar-fast's {100 * args.fast_target:.0f}% took as long as {result[0] / epoch:.1f} epochs of the "
                f"lesson's recipe (which reaches 76% after 30)"
            )
    if args.resnet_device:
        report(
            f"cnnlab resnet18-cifar on {args.resnet_device}, default recipe",
            0.94,
            None,
            cnnlab_time_to(
                "resnet18-cifar",
                cifar,
                0.94,
                "/tmp/cnnlab-bench-resnet18-cifar",
                seed=args.seed,
                device=args.resnet_device,
            ),
        )

    if args.mnist_root:
        mnist = load_dataset("mnist", data_root=args.mnist_root, download=False)
        # the yardstick: one epoch of the lesson's MLP recipe, which passes 98% only after its 50
        mlp_epoch = lesson_epoch_seconds("mlp", NotebookDataset(mnist.train.images, mnist.train.labels))
        print(f"the lesson's MNIST MLP recipe: {mlp_epoch:.1f} s for one epoch", flush=True)
        result = cnnlab_time_to(
            "mnist-cnn",
            mnist,
            args.mnist_target,
            "/tmp/cnnlab-bench-mnist-cnn",
            recipe_name=args.mnist_recipe,
            seed=args.seed,
        )
        report(f"cnnlab mnist-cnn, {args.mnist_recipe} recipe", args.mnist_target, None, result)
        if result[0] is not None:
            print(
                f"mnist-cnn's {100 * args.mnist_target:.1f}% took as long as {result[0] / mlp_epoch:.1f} epochs of "
                "the lesson's MLP recipe"
            )


if __name__ == "__main__":
    main()
