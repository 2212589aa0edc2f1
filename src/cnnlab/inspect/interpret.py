"""After training, where the model goes wrong (fastai's `ClassificationInterpretation`): the test images it got most
confidently wrong, and the pairs of classes it mixes up most.

    found = interpret(Predictor.from_run("runs/lesson-cnn-cifar10"))
    found.confused[:3]        # [("cat", "dog", 142), ("dog", "cat", 101), ("truck", "automobile", 64)]
    found.index[:5]           # test images with the highest loss, worst first
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.data import ImageSet
from cnnlab.data.batches import evaluation_batch
from cnnlab.errors import whole
from cnnlab.predict import Predictor, as_predictor


@dataclass
class Interpretation:
    classes: list[str]
    index: np.ndarray  # [K] index in the split of the K highest-loss images, worst first
    loss: np.ndarray  # [K] -log p(true class)
    actual: np.ndarray  # [K] true class
    predicted: np.ndarray  # [K] predicted class
    probability: np.ndarray  # [K] the predicted class's probability (capsule length for CapsNet)
    images: np.ndarray  # uint8 [K, C, H, W]
    confused: list[tuple[str, str, int]]  # (actual, predicted, count), most frequent first, mistakes only
    split: str


def interpret(
    model_or_run, split: str = "test", data_root=None, top: int = 16, images: ImageSet | None = None
) -> Interpretation:
    """The `top` highest-loss images of the run's test (or validation) split and its most confused class pairs.
    `images`: that split, when the caller holds it already (it is not read again)."""
    whole(top, "top", 1)
    predictor: Predictor = as_predictor(model_or_run)
    part = images if images is not None else predictor.split(split, data_root)
    step = evaluation_batch(tuple(part.storage.shape[1:]))
    probabilities = torch.cat(
        [predictor.probabilities(part.pixels(slice(start, start + step))) for start in range(0, len(part), step)]
    )
    predicted = probabilities.argmax(1)
    truth = probabilities.gather(1, part.labels.view(-1, 1))[:, 0]
    loss = -truth.clamp_min(1e-12).log()
    worst = loss.topk(min(top, len(loss))).indices
    k = probabilities.shape[1]
    counts = torch.bincount(part.labels * k + predicted, minlength=k * k).view(k, k).fill_diagonal_(0)
    pairs = [(int(i) // k, int(i) % k) for i in counts.flatten().argsort(descending=True) if counts.flatten()[i] > 0]
    classes = predictor.classes
    return Interpretation(
        classes,
        worst.numpy(),
        loss[worst].numpy(),
        part.labels[worst].numpy(),
        predicted[worst].numpy(),
        probabilities[worst, predicted[worst]].numpy(),
        part.pixels(worst).numpy(),
        [(classes[a], classes[p], int(counts[a, p])) for a, p in pairs],
        split,
    )
