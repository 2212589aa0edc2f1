"""Training a learner's own `nn.Module`: its config, and the network made ready the way registry models are.

    config = own_config(Net, "cifar10", recipe="lesson-cnn:best", epochs=5)

The recipe is borrowed from a registered model (`"lesson-cnn"`, or `"lesson-cnn:best"` for a named one), given as a
`Recipe`, or left to the data set's default; recipe fields given as options override it. The network gets what
registry models get: one checked forward pass before training, channels_last, bf16 autocast where the CPU is fast
at it, fused optimizers, batched augmentation on the device, torchrun (all in assemble.py), and cnnlab's faster
drop-in dropout and max-pool layers (the same layers with their cheaper CPU kernels).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from cnnlab.data import DATASETS
from cnnlab.errors import CnnlabError
from cnnlab.models import ModelSpec, Recipe, get_spec
from cnnlab.models.capture import Capture, named_leaves
from cnnlab.models.contract import OwnModel, check_forward, is_model_class, own_model, rebuild
from cnnlab.models.dropout import Dropout
from cnnlab.models.pooling import MaxPool2d
from cnnlab.training.config import RunConfig, split_options
from cnnlab.training.network import Network, has_conv

# the registered model whose recipe a learner's network borrows when none is named: the lesson's network of the
# data set's kind (its recipe tuned for the data set, where it has one)
DEFAULT_RECIPE = {"mnist": "mlp", "fashion-mnist": "lesson-cnn", "cifar10": "lesson-cnn", "imagefolder": "lesson-cnn"}


def own_config(model, dataset: str, recipe=None, **options) -> RunConfig:
    """A checked RunConfig for the caller's class or instance `model` on `dataset`."""
    if dataset not in DATASETS:
        raise CnnlabError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    changes, options = split_options(options)
    if options.get("weights"):
        raise CnnlabError(
            "weights= loads torchvision's .pth files into registry models; load your own network's "
            "weights into it before passing it to cnnlab.train"
        )
    name = (model if is_model_class(model) else type(model)).__qualname__
    chosen = borrowed_recipe(recipe, dataset).replace(**changes)
    # a Recipe the caller made is theirs in every field; a borrowed one, in those the options change
    overridden = [f.name for f in dataclasses.fields(Recipe)] if isinstance(recipe, Recipe) else sorted(changes)
    return RunConfig(
        name, dataset, chosen, valid_fraction=chosen.valid_fraction, custom=True, overridden=overridden, **options
    )


def borrowed_recipe(recipe, dataset: str) -> Recipe:
    """`recipe` as a Recipe: one already, a registered model's ("lesson-cnn", "lesson-cnn:best"), or the default."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe is None:
        return get_spec(DEFAULT_RECIPE[dataset]).recipe(None, dataset)
    if not isinstance(recipe, str):
        raise CnnlabError(
            f"recipe= takes a registered model's name (e.g. 'lesson-cnn' or 'lesson-cnn:best') or a "
            f"cnnlab.models.Recipe; got {type(recipe).__name__}"
        )
    model, _, name = recipe.partition(":")
    return get_spec(model).recipe(name or None, dataset)


def prepare_own(
    model, config: RunConfig, shape: tuple[int, int, int], num_classes: int, own: OwnModel | None = None
) -> tuple[nn.Module, OwnModel]:
    """The caller's network, built (a class) or taken (an instance), checked against the data on two images, with
    the recipe's dropout; `own` (resuming) is the record's description, which the network must match."""
    if own is not None:
        model = rebuild(model, own, config.model)
    else:
        model, own = own_model(model, config.model_args if is_model_class(model) else None)
    faster_layers(model)
    check_forward(model, shape, num_classes, config.dataset)
    if config.recipe.dropout is not None:
        for layer in model.modules():
            if isinstance(layer, nn.Dropout):
                layer.p = config.recipe.dropout
    return model, own


def own_network(
    config: RunConfig, shape: tuple[int, int, int], classes: int, mean=None, std=None, model=None, own=None
) -> Network:
    """The caller's network (`model`: a class or an instance) made ready as registry models are; checked on two
    images; `own` (resuming) is what the record says of it. (`mean`, `std`: only the registry builder's.)"""
    model, own = prepare_own(model, config, shape, classes, own)
    channels_last = has_conv(model) and runs_channels_last(model, shape)
    return Network(
        model, own.args or {}, ModelSpec(config.model, type(model), "your own network", shape), own, channels_last
    )


def runs_channels_last(model: nn.Module, shape: tuple[int, int, int], tries: int = 4) -> bool:
    """Whether the network runs on channels_last images, the layout the CPU's convolutions are fastest in. The
    lesson's `x.view(-1, 64 * 4 * 4)` cannot view a channels_last tensor: the output of the layer before such a view
    is made contiguous (a copy of a few values per image), found by trying; False if that is not enough."""
    x = torch.zeros(2, *shape).to(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)
    for _ in range(tries):
        # which layer's output the view failed on: the last call that finished, and its how-manyth use
        capture = Capture(model, [m for _, m in named_leaves(model)], keep=lambda _output: None)
        try:
            with torch.no_grad(), capture:
                model.eval()(x)
            return True
        except RuntimeError as error:
            if "view size is not compatible" not in str(error) or not capture.calls:
                break
            contiguous_after(model, capture.calls[-1].module, capture.calls[-1].use + 1)
        finally:
            model.train()
    model.to(memory_format=torch.contiguous_format)
    return False


def contiguous_after(model: nn.Module, layer: nn.Module, use: int) -> None:
    """From now on the `use`-th output of `layer` in each forward pass is made contiguous."""
    seen = {"calls": 0}

    def reset(_module, _inputs):
        seen["calls"] = 0

    def contiguous(_module, _inputs, output):
        seen["calls"] += 1
        return output.contiguous() if seen["calls"] == use else None

    model.register_forward_pre_hook(reset)
    layer.register_forward_hook(contiguous)


def faster_layers(model: nn.Module) -> None:
    """torch's own dropout and max-pool layers become cnnlab's drop-in subclasses (same state and computation;
    dropout's mask drawn 4x faster, pooling without a gradient 1.5-2.5x), as registry models have them."""
    for layer in model.modules():
        if type(layer) is nn.Dropout:
            layer.__class__ = Dropout
        elif type(layer) is nn.MaxPool2d:
            layer.__class__ = MaxPool2d
