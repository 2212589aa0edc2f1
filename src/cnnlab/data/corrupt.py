"""Corrupted data sets, as in Zhang et al. 2017 ("Understanding deep learning requires rethinking generalization",
Figure 1): can a network fit data that holds nothing to learn?

    labels=P         a fixed random fraction P of the training labels is replaced by a uniformly random class
    shuffled-pixels  one random permutation of the pixel positions, the same for every image (train and test)
    random-pixels    a different random permutation for every image
    gaussian         every image replaced by noise with the data set's per-channel mean and std

Everything is drawn from the run's seed, so a run is repeatable; the spec is kept in run.json. The labels of the
test set are never touched; the pixel corruptions change the test images too (a network trained on shuffled
pixels is tested on pixels shuffled the same way).
"""

from __future__ import annotations

import math

import torch

from cnnlab.data.datasets import Dataset, ImageSet, channel_stats
from cnnlab.errors import CnnlabError

CORRUPTIONS = {
    "labels": "labels=P: a random fraction P of the training labels replaced by random classes",
    "shuffled-pixels": "one random permutation of the pixel positions for all images",
    "random-pixels": "a different random permutation of the pixel positions for each image",
    "gaussian": "images replaced by Gaussian noise of the data set's mean and std",
}
CHUNK = 4096  # images permuted at a time: one chunk's random keys, not the whole set's, are in memory


def parse_corrupt(spec: str) -> tuple[str, float]:
    """'labels=0.5' -> ('labels', 0.5); 'gaussian' -> ('gaussian', 1.0); '' -> ('', 0.0)."""
    if not spec:
        return "", 0.0
    kind, _, value = spec.partition("=")
    if kind not in CORRUPTIONS:
        raise CnnlabError(
            f"--corrupt {spec!r}: unknown corruption; use labels=P (P from 0 to 1), "
            f"{', '.join(k for k in CORRUPTIONS if k != 'labels')}"
        )
    if kind != "labels":
        if value:
            raise CnnlabError(f"--corrupt {spec!r}: {kind} takes no value")
        return kind, 1.0
    try:
        fraction = float(value)
    except ValueError:
        fraction = math.nan
    if not 0 <= fraction <= 1:
        raise CnnlabError(f"--corrupt {spec!r}: give the fraction of labels to replace, from 0 to 1, e.g. labels=1")
    return kind, fraction


def corrupt(data: Dataset, spec: str, seed: int) -> Dataset:
    """`data` with its training labels or its images corrupted as `spec` says (see the module's docstring)."""
    kind, fraction = parse_corrupt(spec)
    if not kind:
        return data
    generator = torch.Generator().manual_seed(seed + 7_919)  # apart from the split's and the batches' streams
    if kind == "labels":
        train = random_labels(data.train, fraction, len(data.classes), generator)
        return Dataset(data.name, data.classes, train, data.test, data.source)
    if kind == "gaussian":
        mean, std = channel_stats(data.train)
        change = lambda images: gaussian_like(images, mean, std, generator)  # noqa: E731
    elif kind == "shuffled-pixels":
        order = torch.randperm(data.shape[1] * data.shape[2], generator=generator)
        change = lambda images: permuted(images, order)  # noqa: E731
    else:
        change = lambda images: each_permuted(images, generator)  # noqa: E731
    return Dataset(
        data.name,
        data.classes,
        ImageSet(change(data.train.images), data.train.labels),
        ImageSet(change(data.test.images), data.test.labels),
        data.source,
    )


def random_labels(images: ImageSet, fraction: float, classes: int, generator: torch.Generator) -> ImageSet:
    """Exactly round(fraction * N) labels, chosen at random, each replaced by a uniformly random class (which is
    the true one a tenth of the time with ten classes, as in the paper)."""
    n = len(images.labels)
    chosen = torch.randperm(n, generator=generator)[: round(fraction * n)]
    labels = images.labels.clone()
    labels[chosen] = torch.randint(classes, (len(chosen),), generator=generator)
    return ImageSet(images.storage, labels, images.rows)


def permuted(images: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Every image's pixel positions in `order`; the channels of a pixel move together."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w)[:, :, order].reshape(n, c, h, w)


def each_permuted(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, c, h, w = images.shape
    out = torch.empty_like(images)
    for begin in range(0, n, CHUNK):
        chunk = images[begin : begin + CHUNK].reshape(-1, c, h * w)
        orders = torch.rand(len(chunk), h * w, generator=generator).argsort(1)
        out[begin : begin + CHUNK] = chunk.gather(2, orders[:, None].expand(-1, c, -1)).view(-1, c, h, w)
    return out


def gaussian_like(images: torch.Tensor, mean, std, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator)
    noise = noise * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    return (noise * 255).round().clamp(0, 255).to(torch.uint8)
