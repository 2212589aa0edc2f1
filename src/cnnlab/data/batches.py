"""Mini-batches cut from tensors that stay on the device.

The whole split is moved to the device once as uint8; each batch is gathered, converted to float, normalized and
augmented there, as one tensor operation per step. No per-sample Python, no worker processes: on a CPU this is
what makes an epoch take seconds instead of minutes.

With several processes (`share=(rank, size)`), every process draws the same permutation and takes its part of each
batch: the batch stays the global batch, whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnlab.data.datasets import ImageSet
from cnnlab.data.preprocess import Preprocess
from cnnlab.errors import MAX_SEED, whole


def evaluation_batch(shape: tuple[int, int, int]) -> int:
    """Images per batch where no gradient is kept (validation, test): 256, fewer for large images, so that a
    batch's input stays within 8 MB of floats. What a layer makes of it then fits a CPU's caches better: cifar-fast
    evaluated 13% faster than at 1024 images (the lesson's networks as fast)."""
    c, h, w = shape
    return max(1, min(256, 2**21 // (c * h * w)))


class Batches:
    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        preprocess: Preprocess,
        device="cpu",
        shuffle: bool = False,
        augment: Callable | None = None,
        seed: int = 0,
        channels_last: bool = False,
        share: tuple[int, int] = (0, 1),
    ):
        self.images = data.storage.to(device)  # a memory map stays one: batches read only their rows
        self.rows = data.rows.to(device) if data.rows is not None else None
        self.labels = data.labels.to(device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed = whole(seed, "seed", 0, MAX_SEED)
        self.device, self.channels_last = torch.device(device), channels_last
        self.normalize = preprocess.normalizer(device)
        self.epoch = 0
        self.rank, self.size = share

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def global_batch(self, step: int) -> int:
        """How many images batch `step` has over all processes (the last one may be short)."""
        return min(self.batch_size, len(self.labels) - step * self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Shuffling and augmentation depend only on (seed, epoch), so a resumed run sees the same batches."""
        self.epoch = epoch

    def __iter__(self):
        # one stream per (seed, epoch); modulo 2^64, the largest seed a generator takes
        generator = torch.Generator(self.device).manual_seed((self.seed * 100_003 + self.epoch) % 2**64)
        n = len(self.labels)
        order = torch.randperm(n, generator=generator, device=self.device) if self.shuffle else None
        if self.rank:  # the same permutation everywhere, but each process its own augmentation
            generator = torch.Generator(self.device).manual_seed(
                ((self.seed * 100_003 + self.epoch) * 1_009 + self.rank) % 2**64
            )
        for start in range(0, n, self.batch_size):
            index = (
                order[start : start + self.batch_size] if order is not None else slice(start, start + self.batch_size)
            )
            if self.size > 1:  # this process's part of the batch
                if order is None:
                    index = torch.arange(start, min(start + self.batch_size, n), device=self.device)
                index = index.tensor_split(self.size)[self.rank]
            x = self.normalize(self.images[index if self.rows is None else self.rows[index]])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.labels[index]
