"""What the time-to-accuracy benchmarks share: training with a cnnlab recipe until a test-accuracy target."""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, SubsetRandomSampler

from cnnlab.models import create_model, get_spec
from cnnlab.training.config import RunConfig
from cnnlab.training.loop import train


def lesson_epoch_seconds(model: str, dataset: torch.utils.data.Dataset, **model_args) -> float:
    """One epoch as the lesson's notebooks run it: a per-sample Dataset, DataLoader batch 20 over 80% of the
    training set, SGD lr 0.01, then validation over the other 20% (also through the per-sample Dataset)."""
    torch.manual_seed(0)
    order = torch.randperm(len(dataset)).tolist()
    split = len(dataset) // 5
    train_loader = DataLoader(dataset, batch_size=20, sampler=SubsetRandomSampler(order[split:]))
    valid_loader = DataLoader(dataset, batch_size=20, sampler=SubsetRandomSampler(order[:split]))
    net = create_model(model, **model_args)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    start = time.perf_counter()
    net.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(net(x), y).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        for x, y in valid_loader:
            criterion(net(x), y)
    return time.perf_counter() - start


def cnnlab_time_to(
    model: str,
    data,
    target: float,
    folder: str,
    recipe_name: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    valid_fraction: float = 0.2,
    **changes,
):
    """Train `model` with its recipe on the loaded `data` (`valid_fraction` of its training set held out), checking
    test accuracy after every epoch (the check is not counted). Returns (seconds to `target` or None, that epoch,
    final test accuracy, seconds in all)."""
    recipe = get_spec(model).recipe(recipe_name, data.name).replace(**changes)
    checks = {"seconds": 0.0, "reached": None, "epoch": None}
    start = time.perf_counter()

    def check(epoch, run):
        t0 = time.perf_counter()
        accuracy = run.evaluate(data.test).accuracy
        print(
            f"    epoch {epoch}: test accuracy {100 * accuracy:.2f}% at {t0 - start - checks['seconds']:.1f} s",
            flush=True,
        )
        if checks["reached"] is None and accuracy >= target:
            checks["reached"], checks["epoch"] = t0 - start - checks["seconds"], epoch
        checks["seconds"] += time.perf_counter() - t0

    config = RunConfig(model, data.name, recipe, seed=seed, device=device, valid_fraction=valid_fraction)
    run = train(config, folder, overwrite=True, data=data, progress=False, on_epoch_end=check, log=lambda line: None)
    total = time.perf_counter() - start - checks["seconds"]
    return checks["reached"], checks["epoch"], run.record.test.accuracy, total


def report(name: str, target: float, lesson_seconds: float | None, result) -> None:
    reached, epoch, final, total = result
    print(f"{name}: {total:.1f} s for the whole recipe, final test accuracy {100 * final:.2f}%")
    if reached is None:
        print(f"{name} never reached {100 * target:.1f}% test accuracy")
        return
    print(f"{name} reached {100 * target:.1f}% after epoch {epoch}: {reached:.1f} s")
    if lesson_seconds:
        print(
            f"speed-up to {100 * target:.1f}%: {lesson_seconds / reached:.1f}x "
            f"(lesson {lesson_seconds:.0f} s / cnnlab {reached:.1f} s)"
        )
