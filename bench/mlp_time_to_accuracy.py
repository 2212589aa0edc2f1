"""Time to 98.0% MNIST test accuracy: the lesson's recipe against `cnnlab train mlp`, measured in the same run.

The lesson's notebook (written here as it does it: a Dataset converting each image through PIL to a tensor, a
DataLoader with batch 20, SGD lr 0.01, validation every epoch) needs its full 50 epochs to pass 98%; we time one
epoch and multiply by 50, as the issue asks. Its network is cnnlab's `mlp`, whose dropout is cnnlab's faster one:
if anything, that flatters the notebook. cnnlab trains with its default recipe and the test accuracy is
checked after every epoch (that check is not counted); it keeps training to the recipe's end, to report the final
accuracy too.

    .venv/bin/python bench/mlp_time_to_accuracy.py --data-root ../shared/data [--dataset fashion-mnist]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image
from timing import cnnlab_time_to, lesson_epoch_seconds, report

from cnnlab.data import load_dataset


class NotebookDataset(torch.utils.data.Dataset):
    """What torchvision's MNIST + ToTensor do per sample: uint8 array -> PIL image -> float tensor in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images[:, 0].numpy(), labels.numpy()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i], mode="L")
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).unsqueeze(0), int(self.labels[i])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--out", default="/tmp/cnnlab-bench-mlp")
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_root=args.data_root, download=False)
    print(f"{args.dataset} from {data.source}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    epoch = lesson_epoch_seconds("mlp", NotebookDataset(data.train.images, data.train.labels))
    lesson = 50 * epoch
    print(f"lesson recipe: {epoch:.1f} s for one epoch -> {lesson:.0f} s for its 50 epochs")

    report("cnnlab mlp, default recipe", args.target, lesson, cnnlab_time_to("mlp", data, args.target, args.out))


if __name__ == "__main__":
    main()
