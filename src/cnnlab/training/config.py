"""What a training run is asked to do, checked and completed in one place, for Python and the command line alike.

    config = make_config("mlp", "mnist", lr=3e-3)      # the model's recipe for the data set, one field changed

The defaults live here: the data set a model is trained on when none is named, and the device.
Every value is checked when the config is made, so a bad one is refused before any data is read.
The fields declared with `option` are `cnnlab train`'s flags; this module imports torch only in its functions, so
that the command line can read them and still start at once.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data import DATASETS
from cnnlab.errors import MAX_SEED, CnnlabError, whole
from cnnlab.models.recipe import Recipe, check_valid_fraction, option

PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class RunConfig:
    model: str
    dataset: str = option(
        help="data set (default: mnist for 28x28 grey models, cifar10 for the others)", choices=DATASETS
    )
    recipe: Recipe
    data_root: str | None = option(
        None,
        help="folder holding the data set (default: $CNNLAB_DATA, ~/.cache/cnnlab, /usr/share/datasets); for "
        "imagefolder, the image folder itself",
        metavar="FOLDER",
    )
    valid_fraction: float = 0.2  # as the recipe says (make_config copies it): the split the run used
    seed: int = option(0, help="seed of the initial weights, the validation split and the batches' order")
    device: str = option("cpu", help="cpu, cuda, cuda:N, or auto: cuda when there is one (the command line's default)")
    precision: str = option("auto", help="auto: bf16 autocast where the hardware is fast at it", choices=PRECISIONS)
    image_size: int | None = option(None, help="imagefolder: side every image is resized to", metavar="PIXELS")
    model_args: dict = field(default_factory=dict)
    weights: str | None = option(
        None,
        help="start from pretrained weights: imagenet (torchvision's, downloaded once and checked; alexnet, vgg*, "
        "resnet18/34/50) or a .pth file; a different class count re-initializes only the last layer",
        metavar="imagenet|FILE.pth",
    )
    custom: bool = False  # `model` names the caller's own nn.Module class, not a registry model
    corrupt: str = option(
        "",
        help="memorization (Zhang et al. 2017): labels=P (a random fraction P of the training labels replaced), "
        "shuffled-pixels, random-pixels or gaussian; seeded by --seed",
        metavar="SPEC",
    )
    overridden: list[str] = field(default_factory=list)  # the recipe fields the caller set; the rest are the recipe's

    def __post_init__(self):
        from cnnlab.data.corrupt import parse_corrupt
        from cnnlab.models import get_spec
        from cnnlab.training.transfer import check_transfer

        if not self.custom:
            get_spec(self.model)
        check_valid_fraction(self.valid_fraction)
        whole(self.seed, "seed", 0, MAX_SEED)
        if self.precision not in PRECISIONS:
            raise CnnlabError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.image_size is not None:
            whole(self.image_size, "image size")
        parse_corrupt(self.corrupt)
        self.device = resolve_device(self.device)
        check_transfer(self.model, self.weights, self.recipe)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "recipe": self.recipe.to_dict()}


def make_config(model: str, dataset: str | None = None, recipe: str | None = None, **options) -> RunConfig:
    """A checked RunConfig: `options` are RunConfig fields (data_root, seed, device, ...) or recipe fields (epochs,
    lr, augment, ...) that override the named recipe (default: the data set's own, else the model's default)."""
    from cnnlab.models import get_spec

    dataset = dataset or default_dataset(model)
    if dataset not in DATASETS:
        raise CnnlabError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    for value, what in ((model, "model"), (dataset, "data set"), (recipe, "recipe")):
        if value is not None and not isinstance(value, str):
            raise CnnlabError(f"{what} {value!r:.60}: must be a name (a string)")
    changes, options = split_options(options)
    chosen = get_spec(model).recipe(recipe, dataset).replace(**changes)
    # the recipe says how much to hold out (the figures it was measured with); the config keeps what was used
    return RunConfig(
        model, dataset, chosen, valid_fraction=chosen.valid_fraction, overridden=sorted(changes), **options
    )


def split_options(options: dict) -> tuple[dict, dict]:
    """Training options as (recipe field changes, RunConfig fields), each checked; an unknown one is refused."""
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    changes = {k: v for k, v in options.items() if k in recipe_fields and v is not None}  # None: the recipe's own
    options = {k: v for k, v in options.items() if k not in recipe_fields}
    reserved = {"model", "dataset", "recipe", "custom", "overridden"}  # said otherwise, or worked out here
    unknown = set(options) - {f.name for f in dataclasses.fields(RunConfig)} - reserved
    if unknown or set(options) & reserved:
        raise CnnlabError(f"unknown training option(s) {', '.join(sorted(unknown or options))}")
    for key in ("data_root", "weights"):  # a Path is as good as its text
        if isinstance(options.get(key), os.PathLike):
            options[key] = os.fspath(options[key])
    check_types(Recipe, changes)
    check_types(RunConfig, options)
    if options.get("data_root"):  # absolute: a resume from another folder must find the data too
        options["data_root"] = str(Path(options["data_root"]).resolve())
    return changes, options


def check_types(kind, values: dict) -> None:
    """Each option of the dataclass `kind` of its declared type, or one line naming it: `lookahead="no"` would
    otherwise train to the end and leave a run.json that cannot be read back."""
    hints = typing.get_type_hints(kind)
    for name, value in values.items():
        if value is None or name not in hints:  # None: the recipe's own value
            continue
        accepted = (
            [a for a in typing.get_args(hints[name]) if a is not type(None)]
            if typing.get_origin(hints[name]) in (typing.Union, types.UnionType)
            else [hints[name]]
        )
        if not any(_is(value, a) for a in accepted):
            wanted = " or ".join(_TYPE_WORDS.get(a, getattr(a, "__name__", str(a))) for a in accepted)
            raise CnnlabError(f"{name} {value!r:.60}: must be {wanted}")


_TYPE_WORDS = {bool: "True or False", int: "a whole number", float: "a number", str: "a string (text)", dict: "a dict"}


def _is(value, kind) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, typing.get_origin(kind) or kind)


def default_dataset(model: str) -> str:
    """MNIST for 28x28 grey models, CIFAR-10 for 32x32 colour ones; ImageNet-shaped models must be told."""
    from cnnlab.models import get_spec

    c, h, _ = get_spec(model).default_input
    if (c, h) == (1, 28):
        return "mnist"
    if (c, h) == (3, 32):
        return "cifar10"
    raise CnnlabError(
        f"{model} is an ImageNet-shaped model: say which data with --dataset (e.g. imagefolder "
        "--data-root FOLDER), or use its CIFAR-shaped variant"
    )


def resolve_device(name: str) -> str:
    """`auto` is the GPU when PyTorch sees one, else the CPU; a device that is not there is refused."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise CnnlabError(f"device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnlabError(f"device {name}: no CUDA GPU is visible to PyTorch; use cpu")
    if device.type not in ("cpu", "cuda"):
        raise CnnlabError(f"device {name!r}: cnnlab trains on cpu or cuda")
    return name
