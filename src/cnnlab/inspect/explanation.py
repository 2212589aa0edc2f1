"""One call per explanation: compute it, say what was found, and draw it.

    result = explain(predictor, "gradcam", ["cat.png"], target="cat")
    result.array        # the raw numbers: heat maps, feature maps, filters, patches' scores, optimized images
    result.lines        # what was found, in words (what `cnnlab explain` prints)
    result.figure       # a matplotlib Figure (shown inline in Jupyter; `cnnlab.plots.save(result.figure, path)`)

Computing lives in the modules beside this one, drawing in `cnnlab.plots`; this module only joins the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.inspect.methods import method_named
from cnnlab.predict import Predictor, are_pictures, as_predictor


@dataclass
class Explanation:
    method: str
    array: np.ndarray
    figure: object
    lines: list[str] = field(default_factory=list)


@dataclass
class _Images:
    """The images to explain as the model takes them, their names for titles, and what was changed in each."""

    pixels: np.ndarray
    names: list[str]
    lines: list[str]


@dataclass
class _Asked:
    """One explanation asked for: the method, its images (None for one that takes none), the layer and the class
    (None: the default ones), and the method's options object."""

    method: str
    given: _Images | None
    layer: str | None
    target: object
    options: object


def explain(model_or_run, method: str, images=(), *, layer=None, target=None, **options) -> Explanation:
    """Explain a trained model with `method` on `images` (files, PIL images or uint8 pixels).

    The methods, and each one's options with their defaults, are declared in `cnnlab.inspect.methods.METHODS`:
    `layer` is for those that look at a layer (default: the last conv layer), `target` (a class index or name) for
    those about one class (default: each image's predicted class); an option the method does not take is refused.
    """
    chosen = method_named(method)
    settings = chosen.settings(options, layer, target)
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not chosen.images and images:
        raise CnnlabError(f"method {method} takes no image; give just the run")
    if chosen.images and not images:
        raise CnnlabError(f"method {method} needs at least one image")
    predictor = as_predictor(model_or_run)
    given = _prepare(predictor, images) if chosen.images else None
    picture = _attribution if chosen.heat_map else chosen.compute()
    result = picture(predictor, _Asked(method, given, layer, target, settings))
    if given is not None:
        result.lines[:0] = given.lines
    return result


def _prepare(predictor: Predictor, images) -> _Images:
    if are_pictures(images):
        pixels, notes = predictor.prepare(images)
        names = [Path(i).name if isinstance(i, (str, Path)) else f"image {k}" for k, i in enumerate(images)]
        lines = [f"{name}: {'; '.join(n)}" for name, n in zip(names, notes) if n]
        return _Images(pixels.numpy(), names, lines)
    pixels = np.asarray(images[0] if len(images) == 1 else images)
    pixels = pixels[None] if pixels.ndim == 3 else pixels
    return _Images(pixels, [f"image {k}" for k in range(len(pixels))], [])


def _filters(predictor: Predictor, asked: _Asked) -> Explanation:
    from cnnlab.models.layers import first_layer_filters
    from cnnlab.plots import filters_figure

    name, weights = first_layer_filters(predictor.model, predictor.input_shape)
    o, c, kh, kw = weights.shape
    shown = min(o, asked.options.channels)
    first = f"; the first {shown} shown" if shown < o else ""
    look = "colour, each stretched to its own range" if c == 3 else "red positive, blue negative"
    figure = filters_figure(weights[:shown], f"{predictor.name}: {name}, {o} filters {kh}x{kw}{first} ({look})")
    return Explanation(asked.method, weights, figure, [f"{name}: {o} filters of {c}x{kh}x{kw}{first}"])


def _activations(predictor: Predictor, asked: _Asked) -> Explanation:
    from cnnlab.models.layers import resolve_layer
    from cnnlab.plots import feature_maps_figure

    given = asked.given
    name, module = resolve_layer(predictor.model, asked.layer)
    maps = predictor.activations(given.pixels, name)
    kind = type(module).__name__
    if maps.ndim == 4:
        shown = min(maps.shape[1], asked.options.channels)
        lines = [
            f"{name} ({kind}): {maps.shape[1]} channels of {maps.shape[2]}x{maps.shape[3]}"
            + (f"; the first {shown} shown" if shown < maps.shape[1] else "")
        ]
        lines += [
            f"{image}: most active channel {row.argmax()} (mean {row.max():.3g})"
            for image, row in zip(given.names, maps.mean((2, 3)))
        ]
        heading = f"{predictor.name}: feature maps of {name}, one colour scale per image"
        if maps.min() < 0:
            heading += "\n(values before any ReLU: the negative ones are what a ReLU after it would set to 0)"
            lines.append(f"{name} outputs values before the ReLU that follows it (negative values included)")
    else:
        shown = maps.shape[1]
        lines = [f"{name} ({kind}): {maps.shape[1]} outputs per image, no feature maps"]
        heading = f"{predictor.name}: outputs of {name}"
    figure = feature_maps_figure(given.pixels, maps[:, :shown], given.names, heading)
    return Explanation(asked.method, maps, figure, lines)


def _attribution(predictor: Predictor, asked: _Asked) -> Explanation:
    """Every heat map: `attribute` computes it, this says where it is strongest and draws it."""
    from cnnlab.inspect.attributions import attribute, class_index, describe
    from cnnlab.models.layers import default_layer
    from cnnlab.plots import attribution_figure

    given, method, layer, target = asked.given, asked.method, asked.layer, asked.target
    chosen = method_named(method)

    probabilities = predictor.probabilities(given.pixels)
    predicted = probabilities.argmax(1).tolist()
    targets = (
        predicted
        if target is None
        else [class_index(target, predictor.classes, probabilities.shape[1])] * len(predicted)
    )
    maps = attribute(predictor, given.pixels, method, target=targets, layer=layer, **asdict(asked.options))
    classes = predictor.classes or [str(i) for i in range(probabilities.shape[1])]
    lines, titles, labels = [], [], []
    for image, p, t, probs, heat in zip(given.names, predicted, targets, probabilities.tolist(), maps):
        row, col = divmod(int(heat.argmax()), heat.shape[1])
        lines.append(
            f"{image}: predicted {classes[p]} ({predictor.score_name} {probs[p]:.3f}); map for "
            f"{classes[t]}, strongest at row {row}, column {col}"
        )
        titles.append(f"{image}: predicted {classes[p]} ({probs[p]:.2f})")
        labels.append(f"{method} for {classes[t]}" + ("" if heat.any() else " (zero everywhere)"))
    where = predictor.name
    if chosen.layer:
        layer = layer or default_layer(predictor.model)
        where += f", layer {layer}"
        if not maps.any(axis=(1, 2)).all():
            lines.append(
                f"note: a map that is zero everywhere means no channel of {layer} holds positive evidence "
                "for the class; try an earlier conv layer with --layer (`cnnlab layers RUN` lists them)"
            )
    heading = f"{where}: {describe(method, given.pixels.shape[1])}"
    figure = attribution_figure(given.pixels, maps, titles, labels, heading, chosen.signed)
    return Explanation(method, maps, figure, lines)


def _top_patches(predictor: Predictor, asked: _Asked) -> Explanation:
    from cnnlab.inspect.patches import images_to_search, top_patches
    from cnnlab.plots import patches_figure

    options = asked.options
    images, searched, _ = images_to_search(predictor, options.dataset, options.data_root, options.limit)
    top = top_patches(predictor, images, asked.layer, channels=options.channels)
    lines = [f"{top.layer}: searched {searched}; {top.receptive_field}"]
    lines += [
        f"channel {channel}: strongest {values[0]:.3g} (image #{index[0]}), 9th {values[-1]:.3g}"
        for channel, values, index in zip(top.channels, top.value, top.index)
    ]
    figure = patches_figure(
        top,
        f"{predictor.name}: the {top.index.shape[1]} patches of {searched} that excite each "
        f"channel of {top.layer} most\n({top.receptive_field})",
    )
    return Explanation(asked.method, top.scores, figure, lines)


def _maximize(predictor: Predictor, asked: _Asked) -> Explanation:
    from cnnlab.inspect.ascent import maximize
    from cnnlab.plots import maximize_figure

    result = maximize(predictor, asked.layer, asked.options.channel, asked.target, steps=asked.options.steps)
    gain = f" ({result.final_value / result.start_value:.1f}x)" if result.start_value > 0 else ""
    line = (
        f"{result.objective}: {result.start_value:.3g} on the starting noise -> {result.final_value:.3g} after "
        f"{len(result.history)} steps{gain}"
    )
    figure = maximize_figure(
        result,
        f"{predictor.name}: the input that maximizes the {result.objective}\n(jitter "
        "and blur keep it from becoming adversarial noise)",
    )
    return Explanation(asked.method, result.image, figure, [line])


def _deepdream(predictor: Predictor, asked: _Asked) -> Explanation:
    from cnnlab.inspect.ascent import deepdream
    from cnnlab.models.layers import resolve_layer
    from cnnlab.plots import deepdream_figure

    given, octaves = asked.given, asked.options.octaves
    name, _ = resolve_layer(predictor.model, asked.layer)
    dreamed = deepdream(predictor, given.pixels, name, octaves=octaves, steps=asked.options.steps)
    before, after = ((predictor.activations(x, name) ** 2).mean() for x in (given.pixels, dreamed))
    line = f"{name}: mean squared activation {before:.3g} -> {after:.3g} ({after / before:.1f}x)"
    figure = deepdream_figure(
        given.pixels, dreamed, given.names, f"{predictor.name}: deep dream on {name}, {octaves} octaves"
    )
    return Explanation(asked.method, dreamed, figure, [line])


def _capsule_dims(predictor: Predictor, asked: _Asked) -> Explanation:
    from cnnlab.inspect.capsules import STEPS, capsule_dimensions
    from cnnlab.plots import capsule_dims_figure

    given = asked.given
    grid = capsule_dimensions(predictor, given.pixels[0])
    predicted = predictor.classes[int(predictor.probabilities(given.pixels[:1]).argmax())]
    line = f"{given.names[0]}: capsule of {predicted}, {grid.shape[0]} dimensions x {grid.shape[1]} nudges"
    figure = capsule_dims_figure(
        grid,
        STEPS.tolist(),
        f"{predictor.name}: what each dimension of the {predicted} capsule encodes ({given.names[0]})",
    )
    return Explanation(asked.method, grid, figure, [line])
