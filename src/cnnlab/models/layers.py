"""A model's layers: one walk through its forward pass, and how to reach into one layer (the names `--layer` takes).

`trace` runs one dummy image through the model with a `Capture` (cnnlab.models.capture) of every named module and
records each call: the summary table, the layer list and the receptive-field arithmetic are all read from it. A
layer is any named module (containers included: ResNet's `layer4` is a common place for Grad-CAM) whose output is
a tensor. As everywhere in cnnlab, a module that the forward pass uses several times (the lesson CNN applies one
`pool` after each conv) gives a call per use, and its name means its first use.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.capture import Capture, named_leaves


@dataclass
class Call:
    """One module's run during a forward pass."""

    name: str
    module: nn.Module
    entered: int  # when the call began: containers begin before their children
    input_shape: tuple | None  # of its first input, if a tensor; batch included
    output_shape: tuple | None  # of its output (of a tuple's first element); batch included
    tensor_output: bool  # a single tensor: a layer that `--layer` can name

    @property
    def leaf(self) -> bool:
        return not any(True for _ in self.module.children())


def trace(model: nn.Module, input_shape: tuple[int, ...], stop_at: nn.Module | None = None) -> list[Call]:
    """Every call of every named module while the model (in eval mode, no gradients) runs on one zero image of
    `input_shape` (C, H, W), in the order the calls finish; the walk ends early after `stop_at` has run."""
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    try:  # shapes only are kept: no activation outlives its layer
        with torch.no_grad(), Capture(model, keep=_shapes, inputs=True, stop_after=stop_at) as capture:
            model.eval()(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return [
        Call(c.name, c.module, c.entered, c.input[0] if c.input and c.input[1] else None, *c.output)
        for c in capture.calls
    ]


def _shapes(value) -> tuple[tuple | None, bool]:
    """(shape of a tensor, or of a tuple's first element; whether it is a single tensor): what `trace` keeps."""
    first = value[0] if isinstance(value, (tuple, list)) and value else value
    return _shape(first), isinstance(value, torch.Tensor)


def _shape(value) -> tuple | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


@dataclass
class Layer:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # of one image, at its first use
    calls: int  # how many times one forward pass uses it


def layer_table(model: nn.Module, input_shape: tuple[int, int, int]) -> list[Layer]:
    """Every module the forward pass uses, in the order it is first entered, with its output shape."""
    first: dict[nn.Module, Call] = {}
    counts: dict[nn.Module, int] = {}
    for call in trace(model, input_shape):
        counts[call.module] = counts.get(call.module, 0) + 1
        if call.tensor_output:
            first.setdefault(call.module, call)
    ordered = sorted(first.values(), key=lambda c: c.entered)
    return [Layer(c.name, type(c.module).__name__, c.output_shape[1:], counts[c.module]) for c in ordered]


def default_layer(model: nn.Module) -> str | None:
    """The layer explanations look at unless told: the one a model names as its `inspect_layer` (CapsNet: conv1),
    else the last convolutional layer, the most abstract features that still have a place in the image."""
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    return getattr(model, "inspect_layer", None) or (convs[-1] if convs else None)


def get_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not name or name not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" if len(names) > 40 else "")
        raise CnnlabError(
            f"unknown layer {name!r}; the model's layers are: {shown} (`cnnlab layers RUN` shows their output shapes)"
        )
    return modules[name]


NO_DEFAULT = (
    "the model has no convolutional layer to default to; name a layer with --layer (`cnnlab layers RUN` lists them)"
)


def resolve_layer(model: nn.Module, name: str | None, no_default: str = NO_DEFAULT) -> tuple[str, nn.Module]:
    """(name, module) of the named layer, or of the default one; `no_default` is the error when there is none."""
    name = name or default_layer(model)
    if name is None:
        raise CnnlabError(no_default)
    return name, get_layer(model, name)


def layer_output(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The layer's output (first use) for input x, keeping the graph for gradients. The rest of the model is not
    run: it is faster, and convolutional layers then take images of any size."""
    with Capture(model, [layer], stop_after=layer) as capture:
        model(x)
    output = capture.first(layer).output
    if not isinstance(output, torch.Tensor):
        raise CnnlabError(f"the layer {type(layer).__name__} outputs a {type(output).__name__}, not a tensor")
    return output


def first_layer_filters(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> tuple[str, np.ndarray]:
    """(layer name, weights [filters, C, kh, kw]) of the first conv layer: what the network looks for in pixels.

    A model without convolutions (the MLP) gets its first linear layer's rows reshaped to the image: each is the
    template one hidden unit matches against the whole image.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module.weight.detach().float().numpy()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and input_shape and module.in_features == int(np.prod(input_shape)):
            return name, module.weight.detach().float().numpy().reshape(-1, *input_shape)
    raise CnnlabError(
        "the model has neither a conv layer nor a first linear layer that takes the whole image: "
        "it has no filters to show"
    )


@contextmanager
def every_layer_output(model: nn.Module):
    """Inside the block, every forward pass records each leaf module's output, in the order they ran, as
    (name, module, a copy of the output): one pass gives every layer (`layer_output` stops at one). A module used
    several times gives a row per use. The list is filled when the block ends."""
    outputs: list[tuple[str, nn.Module, torch.Tensor]] = []
    leaves = [(n, m) for n, m in named_leaves(model) if not isinstance(m, nn.Dropout)]  # identity in eval mode
    capture = Capture(model, [m for _, m in leaves], keep=_feature_copy)
    try:
        with capture:
            yield outputs
    finally:
        outputs.extend((c.name, c.module, c.output) for c in capture.calls if c.output is not None)


def _feature_copy(output):
    """A float copy of feature maps [N, C, H, W] or vectors [N, F], else None. A copy: an in-place ReLU right after
    (MnistCNN's) would overwrite the tensor itself."""
    if isinstance(output, torch.Tensor) and output.ndim in (2, 4):
        return output.detach().float().clone()
    return None
