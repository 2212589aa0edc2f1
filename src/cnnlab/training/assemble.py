"""A training assembled from its config: data, network, preprocessing, optimizer and record, rebuilt identically
from the same config (which is what makes resume work).

    training = Training(make_config("mlp", "mnist"), "runs/mlp")
    training.model, training.optimizer, training.record, training.batches(training.train_set, shuffle=True)

`Training` is the live state of one training; `cnnlab.api.Run` is a finished run in its folder. The branches a
config may take each have their hook: corrupt (memorization), own_network (custom.py), take_weights (transfer.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from cnnlab.data import Batches, Dataset, channel_stats, load_dataset, split
from cnnlab.data.augment import augment_for
from cnnlab.data.corrupt import corrupt
from cnnlab.data.preprocess import conventions
from cnnlab.errors import CnnlabError
from cnnlab.models import count_parameters
from cnnlab.models.contract import OwnModel
from cnnlab.training.config import RunConfig
from cnnlab.training.custom import own_network
from cnnlab.training.distributed import World, gathered, total
from cnnlab.training.metrics import Evaluation, evaluate_images, loss_and_scores, resolve_precision
from cnnlab.training.network import fits_in_memory, has_conv, registry_network
from cnnlab.training.optimizer import make_optimizer
from cnnlab.training.record import DataInfo, ModelInfo, RunRecord
from cnnlab.training.transfer import normalization, take_weights
from cnnlab.version import __version__


class LossOf(nn.Module):
    """The training loss as a module's forward: what DistributedDataParallel wraps (it syncs the gradients of what
    its forward used, and CapsNet's loss runs the model's forward itself)."""

    def __init__(self, model: nn.Module, label_smoothing: float):
        super().__init__()
        self.model, self.label_smoothing = model, label_smoothing

    def forward(self, x, y):
        return loss_and_scores(self.model, x, y, self.label_smoothing)


class Training:
    """The pieces of one training, live: made from its config, and from the caller's `model` for an own network
    (`own`: what the record says of it, when resuming). `fresh`: not resumed (resumed, the weights come later)."""

    def __init__(
        self,
        config: RunConfig,
        folder,
        data: Dataset | None = None,
        fresh: bool = True,
        world: World = World(),
        model=None,
        own: OwnModel | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ):
        self.config, self.folder, self.world = config, Path(folder), world
        torch.manual_seed(config.seed)
        if data is None and config.image_size and not config.custom:
            fits_in_memory(config.model, config.image_size)  # before a single image is decoded at that size
        self.data = data or load_dataset(config.dataset, data_root=config.data_root, image_size=config.image_size)
        self.data = corrupt(self.data, config.corrupt, config.seed)  # unchanged without --corrupt
        self.train_set, self.valid_set = split(self.data.train, config.valid_fraction, config.seed)
        config, self.batch_note = batch_for(config, len(self.train_set))
        self.config = config
        mean, std = normalization(config.weights) or channel_stats(self.train_set)
        data_info = DataInfo(
            self.data.name,
            self.data.source,
            self.data.classes,
            list(self.data.shape),
            list(mean),
            list(std),
            len(self.train_set),
            len(self.valid_set),
            len(self.data.test),
            *conventions(self.data.name, self.data.shape),
        )
        self.preprocess = data_info.preprocess  # the record's, as every later reader of the run builds it
        augment_for(config.recipe.augment, self.preprocess)  # checked against the image size, before any file
        make = own_network if config.custom else registry_network
        network = make(config, self.data.shape, len(self.data.classes), mean, std, model=model, own=own)
        self.model, self.model_args = network.model, network.args
        self.weights_note, transfer = take_weights(
            self.model, config.model, config.weights, config.recipe, fresh, progress, log
        )
        self.model = self.model.to(config.device)
        self.channels_last = network.channels_last and has_conv(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if network.spec.initialized_from_data and fresh:  # resumed, those weights come from last.safetensors
            sample = self.train_set.subset(torch.arange(min(5000, len(self.train_set))))
            self.model.initialize_from(next(iter(self.batches(sample, batch_size=len(sample.labels))))[0])
        self.precision = resolve_precision(config.precision, config.device)
        self.optimizer = make_optimizer(config.recipe, self.model, pretrained=bool(config.weights))
        self.loss = LossOf(self.model, config.recipe.label_smoothing)
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            cuda = torch.device(config.device).type == "cuda"
            self.loss = DistributedDataParallel(self.loss, device_ids=[config.device] if cuda else None)
        self.best_state: dict[str, torch.Tensor] | None = None  # weights of the best epoch so far
        parameters = count_parameters(self.model)
        self.record = RunRecord(
            config,
            ModelInfo(
                network.spec.name, self.model_args, parameters, network.spec.outputs, self.precision, network.own
            ),
            data_info,
            __version__,
            torch.__version__,
            processes=world.size,
            transfer=transfer,
        )

    def batches(self, part, shuffle=False, augment=None, batch_size=None) -> Batches:
        return Batches(
            part,
            batch_size or self.config.recipe.batch_size,
            self.preprocess,
            self.config.device,
            shuffle=shuffle,
            augment=augment,
            seed=self.config.seed,
            channels_last=self.channels_last,
            share=(self.world.rank, self.world.size),
        )

    def evaluate(self, part) -> Evaluation:
        """Loss, confusion and predictions on `part`; with several processes each takes a slice, then the sums."""
        world = self.world
        if world.distributed:
            part = part.subset(torch.arange(len(part.labels)).tensor_split(world.size)[world.rank])
        local = evaluate_images(
            self.model,
            part,
            self.preprocess,
            len(self.data.classes),
            self.precision,
            self.config.recipe.label_smoothing,
            self.config.device,
        )
        if not world.distributed:
            return local
        loss_sum, confusion = total(world, torch.tensor(local.loss * local.total, dtype=torch.float64), local.confusion)
        return Evaluation(float(loss_sum) / max(1, int(confusion.sum())), confusion, gathered(world, local.predictions))


def batch_for(config: RunConfig, images: int) -> tuple[RunConfig, str | None]:
    """The config with a batch the `images` training images can fill, and a note if it had to shrink. A batch the
    caller set is theirs: too large, it is refused; the recipe's own shrinks to all the images in one batch
    (recorded so, which is what --resume then uses)."""
    batch = config.recipe.batch_size
    if batch <= images:
        return config, None
    if "batch_size" in config.overridden:
        raise CnnlabError(
            f"batch size {batch} is larger than the {images} training images; use --batch-size {images} or less"
        )
    note = (
        f"the {images} training images are fewer than the recipe's batch of {batch}: all of them are trained on as "
        "one batch"
    )
    return dataclasses.replace(config, recipe=config.recipe.replace(batch_size=images)), note
