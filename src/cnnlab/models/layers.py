"""A model's layers: one walk through its forward pass, and how to reach into one layer (the names `--layer` takes).

`trace` runs one dummy image through the model with hooks on every named module and records each call: the
summary table, the layer list and the receptive-field arithmetic are all read from it. A layer is any named
module (containers included: ResNet's `layer4` is a common place for Grad-CAM) whose output is a tensor. A module
that the forward pass uses several times (the lesson CNN applies one `pool` after each conv) means its first use.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError


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
    calls, began, hooks = [], [], []
    names = {module: name for name, module in model.named_modules() if name}

    def enter(module, _inputs):
        began.append(module)

    def leave(module, inputs, output):
        first_in = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        entered = len(began) - 1 - began[::-1].index(module)
        calls.append(
            Call(names[module], module, entered, _shape(first_in), _shape(out), isinstance(output, torch.Tensor))
        )
        if module is stop_at:
            raise _Reached

    for module in names:
        hooks += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=device))
    except _Reached:
        pass
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return calls


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


class _Reached(Exception):
    """Raised by a hook to stop the forward pass once the wanted layer has run."""


def layer_output(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The layer's output (first use) for input x, keeping the graph for gradients. The rest of the model is not
    run: it is faster, and convolutional layers then take images of any size."""
    found = []

    def hook(_module, _inputs, output):
        found.append(output)
        raise _Reached

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not found:
        raise CnnlabError(
            f"the layer {type(layer).__name__} is not used by the model's forward pass; choose "
            "another (`cnnlab layers RUN`)"
        )
    if not isinstance(found[0], torch.Tensor):
        raise CnnlabError(f"the layer {type(layer).__name__} outputs a {type(found[0]).__name__}, not a tensor")
    return found[0]


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
    (name, module, a copy of the output): one pass gives every layer (`layer_output` stops at one)."""
    outputs: list[tuple[str, nn.Module, torch.Tensor]] = []

    def keeper(name):
        def keep(module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim in (2, 4):
                # a copy: an in-place ReLU right after (MnistCNN's) would overwrite the tensor itself
                outputs.append((name, module, output.detach().float().clone()))

        return keep

    leaves = [
        (name, module)
        for name, module in model.named_modules()
        if name and not any(True for _ in module.children()) and not isinstance(module, nn.Dropout)
    ]  # identity in eval mode: the row above once more
    handles = [module.register_forward_hook(keeper(name)) for name, module in leaves]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
