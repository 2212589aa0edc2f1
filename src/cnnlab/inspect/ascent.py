"""Pictures made by the network itself: gradient ascent on the input instead of on the weights.

`maximize` starts from faint noise and changes the pixels to drive up one channel (or one class score). Plain
ascent finds adversarial noise: high-frequency patterns no natural image has. Two regularizers keep the picture
readable (Olah et al. 2017, "Feature Visualization"): random jitter each step (the pattern must work wherever it
lands) and a small blur every few steps (which removes the finest, least natural detail).

`deepdream` (Mordvintsev et al. 2015) starts from a photo and amplifies whatever a layer already sees in it, at
several scales ("octaves"), small first, so the patterns grow at more than one size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import trange

from cnnlab.data.preprocess import column
from cnnlab.errors import CnnlabError
from cnnlab.inspect.attributions import class_index
from cnnlab.models.layers import layer_output, resolve_layer
from cnnlab.predict import Predictor, as_predictor


@dataclass
class Maximized:
    image: np.ndarray  # uint8 [C, H, W]: the picture found
    start: np.ndarray  # uint8 [C, H, W]: the noise it started from
    objective: str  # what was maximized, in words
    start_value: float  # the objective on the starting noise
    final_value: float  # ... and on the picture found
    history: list[float]  # the objective at each step (with that step's jitter)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each channel (two 1-D passes), the borders reflected."""
    radius = max(1, round(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), g, groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), g.transpose(2, 3), groups=x.shape[1])


def _objective(predictor: Predictor, shape: tuple[int, int, int], layer: str | None, channel: int | None, target):
    """(function of the input -> value to maximize, description)."""
    model = predictor.model
    if target is not None:
        if channel is not None:
            raise CnnlabError("maximize either a class (--target) or a channel (--channel), not both")
        with torch.no_grad():
            n_outputs = model(torch.zeros(1, *shape)).shape[1]
        index = class_index(target, predictor.classes, n_outputs)
        name = predictor.classes[index] if predictor.classes else str(index)
        return (lambda x: model(x)[:, index].mean()), f"score of class {name}"
    if channel is None:
        raise CnnlabError("say what to maximize: a class (--target CLASS) or a channel (--layer L --channel K)")
    name, module = resolve_layer(model, layer)
    with torch.no_grad():
        out = layer_output(model, torch.zeros(1, *shape), module)
    if not 0 <= channel < out.shape[1]:
        raise CnnlabError(
            f"channel {channel} is out of range: layer {name} has {out.shape[1]} channels, 0 to {out.shape[1] - 1}"
        )
    return (lambda x: layer_output(model, x, module)[:, channel].mean()), f"mean activation of {name} channel {channel}"


def maximize(
    model_or_run,
    layer: str | None = None,
    channel: int | None = None,
    target=None,
    steps: int = 200,
    lr: float = 0.1,
    jitter: int | None = None,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    input_shape: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> Maximized:
    """The input that maximizes a channel's mean activation (`layer`, `channel`) or a class score (`target`).

    A bare model needs `input_shape` (C, H, W). Each step moves the (normalized) input by `lr` times the gradient
    divided by its mean absolute value, so the step size does not depend on the layer's scale; the image is kept
    within the range of real pixels.
    """
    predictor = as_predictor(model_or_run)
    shape = input_shape or predictor.input_shape
    if shape is None:
        raise CnnlabError("maximize on a bare model needs input_shape=(C, H, W)")
    value_of, description = _objective(predictor, shape, layer, channel, target)
    low, high = predictor.preprocess.pixel_range()
    generator = torch.Generator().manual_seed(seed)
    noise = 255 * column(predictor.preprocess.mean) + 8 * torch.randn(
        1, *shape, generator=generator
    )  # faint, around the mean colour
    start = predictor.inputs(noise.clamp(0, 255).round().to(torch.uint8))
    jitter = max(1, min(shape[1:]) // 32) if jitter is None else jitter
    x = start.clone().requires_grad_()
    history = []
    # a bar on a terminal (a few hundred steps take a while on a CPU); nothing in a log file
    for step in trange(steps, desc="maximize", unit="step", leave=False, disable=None):
        dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
        value = value_of(torch.roll(x, (dy, dx), (2, 3)))
        (grad,) = torch.autograd.grad(value, x)
        with torch.no_grad():
            x += lr * grad / (grad.abs().mean() + 1e-12)
            if blur_every and (step + 1) % blur_every == 0:
                x.copy_(_blur(x, blur_sigma))
            x.copy_(torch.maximum(torch.minimum(x, high), low))
        history.append(value.item())
    with torch.no_grad():
        start_value, final_value = float(value_of(start)), float(value_of(x))
    return Maximized(predictor.pixels(x)[0], predictor.pixels(start)[0], description, start_value, final_value, history)


def deepdream(
    model_or_run,
    images,
    layer: str | None = None,
    octaves: int = 3,
    scale: float = 1.4,
    steps: int = 10,
    lr: float = 0.1,
    jitter: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """The images (uint8 or float, [N, C, H, W]) with what `layer` sees in them amplified: uint8 [N, C, H, W].

    At each octave, from the smallest, `steps` of gradient ascent on the mean squared activation of the layer,
    each step the size of `lr` times the mean absolute gradient; the detail added at one scale is carried up
    to the next, where the original image supplies the sharper pixels.
    """
    predictor = as_predictor(model_or_run)
    name, module = resolve_layer(predictor.model, layer)
    original = predictor.inputs(images)
    low, high = predictor.preprocess.pixel_range()
    h, w = original.shape[2:]
    sizes = [(round(h / scale**i), round(w / scale**i)) for i in reversed(range(octaves))]
    generator = torch.Generator().manual_seed(seed)
    detail = torch.zeros_like(original)
    for size in sizes:
        base = F.interpolate(original, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (base + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)).requires_grad_()
        for _ in range(steps):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            try:
                out = layer_output(predictor.model, torch.roll(x, (dy, dx), (2, 3)), module)
            except RuntimeError as e:
                raise CnnlabError(
                    f"deepdream: the model cannot run up to {name} on a {size[0]}x{size[1]} image "
                    f"({str(e).splitlines()[0]}); use fewer octaves (--octaves)"
                ) from None
            (grad,) = torch.autograd.grad(out.float().pow(2).mean(), x)
            with torch.no_grad():
                x += lr * grad / (grad.abs().mean((1, 2, 3), keepdim=True) + 1e-8)
                x.copy_(torch.maximum(torch.minimum(x, high), low))
        detail = (x - base).detach()
    return predictor.pixels(x)
