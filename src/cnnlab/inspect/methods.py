"""Every explanation method, declared once: its name, what its picture shows, what it needs, and its options with
their defaults. The command line (its --method choices, option flags and help), `explain`, `attribute` and the
explorer's API are all made from METHODS; adding a method is one entry here plus its computing function.

Imports no torch: the command line reads this at start-up. The computing functions are found by name
(`Method.function`, a function of a module of cnnlab.inspect) when a method is used.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import MISSING, dataclass, field, fields, replace

from cnnlab.errors import CnnlabError, whole, within


def option(default, help: str, kind: type = int, least=1, most=100_000, metavar: str = "N"):
    """A field of a method's options: its default, what it does (for --help), and the values it accepts (the upper
    bounds are far past any useful value: they stop an absurd one from overflowing or filling memory)."""
    return field(default=default, metadata=dict(help=help, kind=kind, least=least, most=most, metavar=metavar))


@dataclass
class NoOptions:
    """A method with nothing to tune."""


@dataclass
class FiltersOptions:
    channels: int = option(64, "filters shown")


@dataclass
class ActivationsOptions:
    channels: int = option(16, "channels shown")


@dataclass
class SmoothGradOptions:
    samples: int = option(25, "noisy copies averaged", most=10_000)
    noise: float = option(0.15, "noise, as a fraction of the input's range (the paper: 0.1-0.2)", float, 0, 1, "X")


@dataclass
class IntegratedGradientsOptions:
    steps: int = option(32, "points on the path from the black image", most=1_000_000)


@dataclass
class OcclusionOptions:
    window: int | None = option(None, "side of the covered square (default: an eighth of the image)", metavar="PIXELS")
    stride: int | None = option(None, "pixels the square moves by (default: half the window)", metavar="PIXELS")


@dataclass
class TopPatchesOptions:
    channels: int = option(8, "channels searched, from the first")
    dataset: str | None = option(None, "data set to search (default: the run's own)", str, metavar="NAME")
    data_root: str | None = option(None, "where the data set is (default: where the run found it)", str, metavar="DIR")
    limit: int = option(2000, "search the first N test images", most=10**9)


@dataclass
class MaximizeOptions:
    channel: int | None = option(
        None, "the channel of --layer to maximize (else --target: a class)", least=0, metavar="K"
    )
    steps: int = option(200, "steps of gradient ascent", most=1_000_000)


@dataclass
class DeepDreamOptions:
    steps: int = option(10, "steps of gradient ascent per octave", most=1_000_000)
    octaves: int = option(3, "scales, each 1.4x the last", most=20)


@dataclass
class Method:
    name: str
    shows: str  # what the picture shows, one line (the command's help)
    function: str  # "module.function" in cnnlab.inspect: a heat map's maps (attributions), else the explanation
    options: type = NoOptions  # a dataclass: each field an option, with its default
    label: str = ""  # how the explorer's menu names it (default: the name)
    heading: str = ""  # a heat map's title over the figure and in the explorer (default: `shows`)
    images: bool = True  # False: it shows the model itself, or searches a data set
    layer: str | None = None  # "conv": a layer with feature maps (default the last conv), "any": any layer
    target: bool = False  # about one class: --target picks it (default: each image's predicted class)
    signed: bool = False  # negative values are evidence against the class (drawn blue)
    over_colours: str | None = None  # a heat map of a colour image: how its three channels became one
    explorer: int = 0  # its place in the menu of the explorer's "Look inside" panel (1 first); 0: not offered

    @property
    def heat_map(self) -> bool:
        """Made by `attribute`: [N, H, W] maps of what counts for a class."""
        return self.function.startswith("attributions.")

    def settings(self, given: dict, layer=None, target=None):
        """The method's options object: its defaults with `given` over them, each value checked; a one-line error
        names an option, a layer or a class the method does not take, or a wrong value."""
        given = {name: value for name, value in given.items() if value is not None}  # None: the default
        known = {f.name: f for f in fields(self.options)}
        wrong = [name for name in given if name not in known]
        if wrong:
            takes = f"its options are {', '.join(known)}" if known else "it has no options"
            raise CnnlabError(f"method {self.name} takes no option {wrong[0]}; {takes}")
        if layer is not None and not self.layer:
            raise CnnlabError(f"method {self.name} takes no layer: it does not look at one layer")
        if target is not None and not self.target:
            raise CnnlabError(f"method {self.name} takes no target: it is not about one class")
        for name, value in given.items():
            _check(value, name, known[name].metadata)
        return replace(self.options(), **given)

    def compute(self):
        """The function that computes it (imported now: it may need torch)."""
        module, name = self.function.rsplit(".", 1)
        return getattr(importlib.import_module(f"cnnlab.inspect.{module}"), name)


def _check(value, name: str, rules: dict) -> None:
    if rules["kind"] is int:
        whole(value, name, rules["least"], rules["most"])
    elif rules["kind"] is float:  # a float's lower bound is left out: noise 0 would make smoothgrad saliency
        rule = f"a number above {rules['least']}, at most {rules['most']}"
        within(value, name, rules["least"], rules["most"], rule, low_open=True)
    elif not isinstance(value, (str, os.PathLike)):
        raise CnnlabError(f"{name} {value!r}: must be a name or a path")


METHODS = {
    m.name: m
    for m in (
        Method(
            "filters",
            "the first conv layer's weights (an MLP: its first layer's rows as images)",
            "explanation._filters",
            FiltersOptions,
            images=False,
        ),
        Method(
            "activations",
            "the feature maps of a layer for each image",
            "explanation._activations",
            ActivationsOptions,
            layer="any",
        ),
        Method(
            "saliency",
            "|gradient| of the class score with respect to each pixel",
            "attributions.saliency",
            label="Saliency",
            heading="|gradient| of the score",
            target=True,
            over_colours="max",
            explorer=2,
        ),
        Method(
            "smoothgrad",
            "the same, averaged over noisy copies: less speckle",
            "attributions.smoothgrad",
            SmoothGradOptions,
            heading="gradient averaged over noisy copies, where it raises the score",
            target=True,
            over_colours="max",
        ),
        Method(
            "integrated-gradients",
            "gradients summed along the way from a black image (red for, blue against)",
            "attributions.integrated_gradients",
            IntegratedGradientsOptions,
            heading="integrated gradients from a black image",
            target=True,
            signed=True,
            over_colours="sum",
        ),
        Method(
            "input-x-gradient",
            "each pixel's gradient times its value (red for, blue against)",
            "attributions.input_x_gradient",
            heading="input x gradient: what each pixel adds to the score, to first order",
            target=True,
            signed=True,
            over_colours="sum",
        ),
        Method(
            "occlusion",
            "how much the score drops when a patch of the image is covered",
            "attributions.occlusion",
            OcclusionOptions,
            label="Occlusion",
            heading="score drop when the pixels are covered by the mean colour",
            target=True,
            signed=True,
            explorer=3,
        ),
        Method(
            "gradcam",
            "where a conv layer's class evidence is (coarse, class-specific)",
            "attributions.gradcam",
            label="Grad-CAM",
            heading="Grad-CAM: gradient-weighted feature maps, upsampled",
            layer="conv",
            target=True,
            explorer=1,
        ),
        Method(
            "gradcam++",
            "Grad-CAM weighting each location: fuller cover, but it partly follows the image itself",
            "attributions.gradcam_plus_plus",
            heading="Grad-CAM++: feature maps weighted by their positive gradients, location by location",
            layer="conv",
            target=True,
        ),
        Method(
            "scorecam",
            "class evidence by masking the image with each feature map: no gradients, slower",
            "attributions.scorecam",
            heading="Score-CAM: feature maps weighted by the score each earns as a mask, no gradients",
            layer="conv",
            target=True,
        ),
        Method(
            "guided-gradcam",
            "Grad-CAM times guided backpropagation: fine detail where Grad-CAM points",
            "attributions.guided_gradcam",
            heading="guided backpropagation x Grad-CAM",
            layer="conv",
            target=True,
            over_colours="max",
        ),
        Method(
            "top-patches",
            "per channel, the 9 data set patches that excite it most (Zeiler & Fergus)",
            "explanation._top_patches",
            TopPatchesOptions,
            images=False,
            layer="conv",
        ),
        Method(
            "maximize",
            "the picture that drives a channel (--channel) or a class (--target) up",
            "explanation._maximize",
            MaximizeOptions,
            images=False,
            layer="any",
            target=True,
        ),
        Method(
            "deepdream",
            "the image with what a layer sees in it amplified, at several scales",
            "explanation._deepdream",
            DeepDreamOptions,
            layer="any",
        ),
        Method(
            "capsule-dims",
            "CapsNet: each dimension of the image's capsule nudged by -0.25..0.25, decoded",
            "explanation._capsule_dims",
        ),
    )
}
EXPLANATIONS = {name: m.shows for name, m in METHODS.items()}  # name: what its picture shows
WITHOUT_IMAGES = tuple(name for name, m in METHODS.items() if not m.images)
HEAT_MAPS = tuple(name for name, m in METHODS.items() if m.heat_map)
EXPLORER = tuple(sorted((name for name, m in METHODS.items() if m.explorer), key=lambda name: METHODS[name].explorer))


def method_named(name: str, heat_map: bool = False) -> Method:
    """The method called `name` (only a heat map's if `heat_map`), or a one-line error listing the choices."""
    choices = HEAT_MAPS if heat_map else tuple(METHODS)
    if name not in choices:
        kind = "attribution method" if heat_map else "method"
        raise CnnlabError(f"unknown {kind} {name!r}; choose one of {', '.join(choices)}")
    return METHODS[name]


def offered(has_conv_layer: bool) -> list[str]:
    """The explorer's methods a model can use, in the menu's order; the first is the one to try first."""
    return [name for name in EXPLORER if has_conv_layer or METHODS[name].layer != "conv"]


def using(what: str, value=True) -> list[str]:
    """The methods whose `what` (layer, target, ...) is `value`: for help texts and messages."""
    return [name for name, m in METHODS.items() if getattr(m, what) == value]


def option_fields() -> dict[str, list[tuple[str, object]]]:
    """Every option any method takes: name -> [(method, its field)], in the order the methods declare them."""
    found: dict[str, list] = {}
    for name, m in METHODS.items():
        for f in fields(m.options):
            found.setdefault(f.name, []).append((name, f))
    return found


def option_help(uses: list[tuple[str, object]]) -> str:
    """One option's help: what it does for each method that takes it, and that method's default."""
    parts: dict[str, list[str]] = {}
    for name, f in uses:
        default = "" if f.default in (None, MISSING) else f" (default {f.default})"
        parts.setdefault(f.metadata["help"], []).append(name + default)
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in parts.items())
