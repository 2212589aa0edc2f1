"""One registry of models, as in timm: a name maps to a builder, a description, and the recipes that train it.

Builders take the data's shape (`in_channels`, `num_classes`, `image_size`) so one architecture serves MNIST,
CIFAR-10 and image folders alike. What a family's forward returns is declared here, once: class logits, or
`outputs="capsules"` (CapsNet: capsule lengths, which are already probabilities, and a decoder that rebuilds the
image); everything downstream asks the spec instead of probing the model. A model that needs its own loss defines
`loss(x, y) -> (loss, scores)`; otherwise training uses cross-entropy on the logits. A model that must undo the
input normalization itself (CapsNet reconstructs [0, 1] pixels) registers `takes_normalization=True` and is built
with the run's measured `mean` and `std`. A model registered with `initialized_from_data=True` sets some weights
from the training images before training starts (cifar-fast's whitening layer): `model.initialize_from(images)`.

Recipes are named: `default` (our fastest route to the target accuracy), `lesson` (the course notebook's), and,
where one network needs different settings on another data set, a recipe named after that data set, which
training picks when no recipe is named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cnnlab.errors import CnnlabError, whole
from cnnlab.models.recipe import Recipe


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable
    description: str
    default_input: tuple[int, int, int]  # (C, H, W) for `cnnlab models` / `summary`
    recipes: dict[str, Recipe] = field(default_factory=dict)
    outputs: str = "logits"  # logits | capsules
    takes_normalization: bool = False  # built with mean=..., std=... of the training data
    initialized_from_data: bool = False  # model.initialize_from(normalized training images)

    @property
    def capsules(self) -> bool:
        """Capsule lengths out (probabilities already), and a decoder: reconstructions and capsule dimensions."""
        return self.outputs == "capsules"

    def recipe(self, name: str | None = None, dataset: str | None = None) -> Recipe:
        """The recipe called `name`; unnamed, the one tuned for `dataset` if there is one, else `default`."""
        if name is None:
            name = dataset if dataset in self.recipes else "default"
        if name not in self.recipes:
            raise CnnlabError(f"{self.name} has no recipe {name!r}; it has: {', '.join(self.recipes)}")
        return self.recipes[name]


MODELS: dict[str, ModelSpec] = {}


def register(
    name: str,
    description: str,
    default_input: tuple[int, int, int],
    recipes: dict[str, Recipe] | None = None,
    outputs: str = "logits",
    takes_normalization: bool = False,
    initialized_from_data: bool = False,
):
    """Decorator: `@register("mlp", ...)` on a function `build(in_channels, num_classes, image_size, **kw)`."""
    if outputs not in ("logits", "capsules"):
        raise ValueError(f"model {name!r}: outputs must be 'logits' or 'capsules'")

    def wrap(build):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = ModelSpec(
            name,
            build,
            description,
            default_input,
            dict(recipes or {}),
            outputs,
            takes_normalization,
            initialized_from_data,
        )
        return build

    return wrap


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise CnnlabError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))} (see `cnnlab models`)")
    return MODELS[name]


def create_model(name: str, in_channels: int | None = None, num_classes: int = 10, image_size: int | None = None, **kw):
    """Build a registered model for data of the given shape (defaults: the model's own `default_input`)."""
    spec = get_spec(name)
    whole(num_classes, "classes", 1, 1_000_000)  # ImageNet-21k has 21,841; a million is past any data set
    for value, what in ((in_channels, "input channels"), (image_size, "image size")):
        if value is not None:
            whole(value, what, 1, 100_000)
    c, h, _ = spec.default_input
    try:
        return spec.build(in_channels=in_channels or c, num_classes=num_classes, image_size=image_size or h, **kw)
    except TypeError as error:  # an argument the model does not take (from a run.json, or a typo)
        if not kw or "argument" not in str(error):
            raise
        raise CnnlabError(f"model {name!r} cannot be built with {kw}: {error}") from None


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
