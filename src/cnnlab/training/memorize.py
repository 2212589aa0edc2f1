"""Watch a network memorize: the same model trained on true and on corrupted data (Zhang et al. 2017, Figure 1).

    curves = memorize("lesson-cnn", "cifar10", subset=5000)     # one Curve per corruption

Each corruption (see `cnnlab.data.corrupt`) trains a fresh copy of the model on a seeded subset of the training
set until it fits it (or `max_epochs`), with nothing that fights memorization: no augmentation, no dropout, no
weight decay. Random labels are fitted too, only later; the test accuracy says what was learned (chance, for them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from cnnlab.data import Batches, Dataset, ImageSet, Preprocess, channel_stats, load_dataset
from cnnlab.data.batches import evaluation_batch
from cnnlab.data.corrupt import corrupt, parse_corrupt
from cnnlab.data.preprocess import conventions
from cnnlab.errors import CnnlabError, whole
from cnnlab.models import Recipe, create_model, get_spec
from cnnlab.models.dropout import set_dropout
from cnnlab.training.metrics import evaluate, loss_and_scores
from cnnlab.training.optimizer import make_optimizer, set_lr

FIGURE_1 = ("", "labels=1", "shuffled-pixels", "random-pixels", "gaussian")  # "": the true data
MEMORIZE_RECIPE = Recipe(epochs=100, batch_size=128, lr=0.01, optimizer="sgd", momentum=0.9, schedule="constant")
FITTED = 0.995  # an epoch's running training accuracy at which the data counts as fitted
MARK = 0.99  # the accuracy whose first crossing each curve reports: "steps to fit", compared across corruptions


def steps_to(steps: list[int], values: list[float], threshold: float = MARK) -> int | None:
    """The first recorded step whose value reaches `threshold` (None if none does)."""
    return next((step for step, value in zip(steps, values) if value >= threshold), None)


def recipe_line(recipe: Recipe) -> str:
    """The recipe as the figure's title says it: its epochs are a limit, each corruption stops once fitted."""
    return f"{recipe.describe()} at most"


@dataclass
class Curve:
    corrupt: str  # "" for the true data
    steps: list[int] = field(default_factory=list)  # after each epoch
    loss: list[float] = field(default_factory=list)  # the epoch's mean training loss
    accuracy: list[float] = field(default_factory=list)  # ... and running training accuracy
    train_accuracy: float = 0.0  # at the end, in eval mode, on the (corrupted) training set
    test_accuracy: float = 0.0
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return {"": "true labels", "labels=1": "random labels"}.get(self.corrupt, self.corrupt)

    @property
    def fitted_at(self) -> int | None:
        """Steps until an epoch's running training accuracy first reached MARK."""
        return steps_to(self.steps, self.accuracy)

    def to_dict(self) -> dict:
        return {**self.__dict__, "label": self.label, "fitted_at": self.fitted_at}


def subset(data: Dataset, n: int | None, seed: int) -> Dataset:
    """The first `n` of a seeded permutation of the training images (the test set whole)."""
    if n is None:
        return data
    whole(n, "subset", 1, len(data.train))
    chosen = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    return Dataset(data.name, data.classes, data.train.subset(chosen), data.test, data.source)


def fit(
    model_name: str, data: Dataset, spec: str, recipe: Recipe, seed: int, progress: bool = True, log=print
) -> Curve:
    """One model trained on `data` corrupted by `spec` until it fits; its curve and its accuracies."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    data = corrupt(data, spec, seed)
    train = ImageSet(data.train.images, data.train.labels)
    mean, std = channel_stats(train)
    preprocess = Preprocess(data.shape, tuple(mean), tuple(std), *conventions(data.name, data.shape))
    c, h, _ = data.shape
    args = {"in_channels": c, "num_classes": len(data.classes), "image_size": h}
    if get_spec(model_name).takes_normalization:
        args.update(mean=mean, std=std)
    model = create_model(model_name, **args)
    if any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        set_dropout(model, 0.0)
    optimizer = make_optimizer(recipe, model)  # as `cnnlab train` makes it from the same recipe
    batches = Batches(train, recipe.batch_size, preprocess, shuffle=True, seed=seed)
    steps_per_epoch = len(batches)
    curve = Curve(spec)
    bar = tqdm(
        range(1, recipe.epochs + 1),
        desc=spec or "true labels",
        leave=False,
        disable=None if progress else True,
        unit="epoch",
    )
    for epoch in bar:
        batches.set_epoch(epoch)
        model.train()
        loss_sum, correct = 0.0, 0
        for i, (x, y) in enumerate(batches):
            set_lr(
                optimizer,
                recipe.lr_at((epoch - 1) * steps_per_epoch + i, recipe.epochs * steps_per_epoch, steps_per_epoch),
            )
            loss, scores = loss_and_scores(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((scores.argmax(1) == y).sum())
        curve.steps.append(epoch * len(batches))
        curve.loss.append(loss_sum / len(train))
        curve.accuracy.append(correct / len(train))
        bar.set_postfix(loss=f"{curve.loss[-1]:.3f}", acc=f"{100 * curve.accuracy[-1]:.1f}%")
        if curve.accuracy[-1] >= FITTED:
            break
    n_classes = len(data.classes)
    curve.train_accuracy = evaluate(model, Batches(train, evaluation_batch(data.shape), preprocess), n_classes).accuracy
    curve.test_accuracy = evaluate(
        model, Batches(data.test, evaluation_batch(data.shape), preprocess), n_classes
    ).accuracy
    curve.seconds = time.perf_counter() - t0
    reached = f"{curve.fitted_at:,} steps" if curve.fitted_at else "not reached"
    log(
        f"{curve.label:<16} {len(curve.steps):3d} epochs ({curve.steps[-1]:,} steps, {curve.seconds:.0f} s), "
        f"{MARK:.0%} running accuracy: {reached}; train accuracy {100 * curve.train_accuracy:.2f}%, "
        f"test accuracy {100 * curve.test_accuracy:.2f}%"
    )
    return curve


def memorize(
    model_name: str,
    dataset: str,
    subset_size: int | None = 5000,
    corruptions=FIGURE_1,
    recipe: Recipe = MEMORIZE_RECIPE,
    seed: int = 0,
    data_root=None,
    progress: bool = True,
    log=print,
) -> list[Curve]:
    """Zhang et al.'s Figure 1 for `model_name`: one curve per corruption on the same training subset."""
    for spec in corruptions:
        parse_corrupt(spec)  # a bad spec is refused before any data is read
    get_spec(model_name)
    data = subset(load_dataset(dataset, data_root=data_root), subset_size, seed)
    if recipe.batch_size > len(data.train):
        raise CnnlabError(
            f"batch size {recipe.batch_size} is larger than the {len(data.train)} training images; "
            f"use --batch-size {len(data.train)} or less"
        )
    return [fit(model_name, data, spec, recipe, seed, progress, log) for spec in corruptions]
