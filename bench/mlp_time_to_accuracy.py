"""Time to 98.0% MNIST test accuracy: the lesson's recipe against `cnnlab train mlp`, measured in the same run.

The lesson's notebook (written here as it does it: a Dataset converting each image through PIL to a tensor, a
DataLoader with batch 20, SGD lr 0.01, validation every epoch) needs its full 50 epochs to pass 98%; we time one
epoch and multiply by 50, as the issue asks. cnnlab trains with its default recipe and the test accuracy is
checked after every epoch (that check is not counted); it keeps training to the recipe's end, to report the final
accuracy too.

    .venv/bin/python bench/mlp_time_to_accuracy.py --data-root ../shared/data [--dataset fashion-mnist]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, SubsetRandomSampler

from cnnlab.data import Batches, load_dataset
from cnnlab.models import create_model, get_spec
from cnnlab.train.loop import RunConfig, train
from cnnlab.train.metrics import evaluate


class NotebookDataset(torch.utils.data.Dataset):
    """What torchvision's MNIST + ToTensor do per sample: uint8 array -> PIL image -> float tensor in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images[:, 0].numpy(), labels.numpy()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i], mode="L")
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).unsqueeze(0), int(self.labels[i])


def lesson_epoch_seconds(data) -> float:
    """One epoch of the notebook: train on 80% (batch 20, SGD lr 0.01), validate on 20%."""
    torch.manual_seed(0)
    dataset = NotebookDataset(data.train.images, data.train.labels)
    order = torch.randperm(len(dataset)).tolist()
    split = len(dataset) // 5
    train_loader = DataLoader(dataset, batch_size=20, sampler=SubsetRandomSampler(order[split:]))
    valid_loader = DataLoader(dataset, batch_size=20, sampler=SubsetRandomSampler(order[:split]))
    model = create_model("mlp")
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, y in valid_loader:
            criterion(model(x), y)
    return time.perf_counter() - start


def cnnlab_time_to(data, dataset: str, target: float, folder: str) -> tuple[float | None, int | None, float, float]:
    """(seconds to `target` test accuracy, that epoch, final test accuracy, whole training seconds)."""
    recipe = get_spec("mlp").recipes["default"]
    checks = {"seconds": 0.0, "reached": None, "epoch": None}
    start = time.perf_counter()

    def check(epoch, run):
        t0 = time.perf_counter()
        test = Batches(data.test, 1024, run.mean, run.std)
        accuracy = evaluate(run.model, test, 10, run.precision).accuracy
        print(f"    epoch {epoch}: test accuracy {100 * accuracy:.2f}%")
        if checks["reached"] is None and accuracy >= target:
            checks["reached"] = t0 - start - checks["seconds"]
            checks["epoch"] = epoch
        checks["seconds"] += time.perf_counter() - t0

    run = train(RunConfig("mlp", dataset, recipe), folder, data=data, progress=False, on_epoch_end=check,
                log=lambda line: None)
    total = time.perf_counter() - start - checks["seconds"]
    return checks["reached"], checks["epoch"], run.info["test"]["accuracy"], total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--out", default="/tmp/cnnlab-bench-mlp")
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_root=args.data_root, download=False)
    print(f"{args.dataset} from {data.source}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    epoch = lesson_epoch_seconds(data)
    lesson = 50 * epoch
    print(f"lesson recipe: {epoch:.1f} s for one epoch -> {lesson:.0f} s for its 50 epochs")

    reached, at_epoch, final, total = cnnlab_time_to(data, args.dataset, args.target, args.out)
    print(f"cnnlab default recipe: {total:.1f} s for the whole recipe, final test accuracy {100 * final:.2f}%")
    if reached is None:
        print(f"cnnlab never reached {100 * args.target:.1f}% test accuracy")
        return
    print(f"cnnlab reached {100 * args.target:.1f}% after epoch {at_epoch}: {reached:.1f} s")
    print(f"speed-up to {100 * args.target:.1f}%: {lesson / reached:.1f}x (lesson {lesson:.0f} s / cnnlab {reached:.1f} s)")


if __name__ == "__main__":
    main()
