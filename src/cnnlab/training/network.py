"""The network a training trains: a registry model built for its data, checked before any training.

A learner's own network is made ready in custom.py (`own_network`); both give a `Network`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import ModelSpec, count_parameters, create_model, get_spec
from cnnlab.models.contract import OwnModel
from cnnlab.models.dropout import set_dropout
from cnnlab.training.config import RunConfig


@dataclass
class Network:
    model: nn.Module
    args: dict  # what the record keeps to build it again: create_model(name, **args), or the own class's arguments
    spec: ModelSpec
    own: OwnModel | None  # a learner's own network: what the record says of it
    channels_last: bool  # whether it may run on channels_last batches


def registry_network(
    config: RunConfig, shape: tuple[int, int, int], classes: int, mean, std, model=None, own=None
) -> Network:
    """The registry's model for images of `shape` and `classes` classes, with the recipe's dropout; one image of
    the data's size goes through it first. (`model`, `own`: only the own-network builder's.)"""
    c, h, _ = shape
    args = {"in_channels": c, "num_classes": classes, "image_size": h, **config.model_args}
    spec = get_spec(config.model)
    if spec.takes_normalization:
        args.update(mean=mean, std=std)
    built = create_model(config.model, **args)
    if config.recipe.dropout is not None:
        set_dropout(built, config.recipe.dropout)
    fits(built, config.model, shape)
    return Network(built, args, spec, None, channels_last=True)


def fits(model: nn.Module, name: str, shape: tuple[int, int, int]) -> None:
    """One image through the model before any training: a size it cannot take is refused in a line, not after
    minutes of data loading in a shape error from deep inside."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *shape))
    except RuntimeError as e:
        raise CnnlabError(
            f"{name} cannot take {shape[1]}x{shape[2]} images with {shape[0]} channel(s) "
            f"({str(e).splitlines()[0][:120]}); image folders: choose --image-size, or pick a model "
            "for small images (mnist-cnn, lesson-cnn, resnet18-cifar)"
        ) from None


def fits_in_memory(name: str, image_size: int) -> None:
    """The model built for image_size x image_size on the meta device (no memory): one whose training state alone
    (weights, gradients, two optimizer moments) is more than this machine's memory is refused before any data is
    read. A model that cannot be built so is left to the checks after loading."""
    import os

    try:
        with torch.device("meta"):
            parameters = count_parameters(create_model(name, in_channels=3, num_classes=2, image_size=image_size))
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (RuntimeError, TypeError, ValueError, OSError, CnnlabError):
        return
    need = 4 * 4 * parameters
    if need > memory:
        raise CnnlabError(
            f"{name} for {image_size}x{image_size} images has {parameters:,} parameters: training "
            f"them needs {need / 2**30:,.0f} GiB, this machine has {memory / 2**30:,.0f} GiB; "
            "choose a smaller --image-size"
        )


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())
