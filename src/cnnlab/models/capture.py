"""Reach into a model while it runs: what its layers give, and the gradients that flow back into them.

Every reader of layers in cnnlab (the layer table and summary, `--layer` activations, the class activation maps,
top patches, activation maximization, receptive fields, the explorer's layer views, the forward-contract check)
goes through `Capture`, so they all follow one rule for a module the forward pass uses more than once:

    every call is kept, in the order the calls finish, numbered by `use` (0, 1, ...) within its forward pass;
    a reader that wants one value asks for `first` or `last`. A layer name (`--layer conv2`) means its first use.

    with Capture(model, ["conv2"]) as capture:
        scores = model(x)
        capture.backward(scores[:, 3].sum())
    maps, grad = capture.first("conv2").output, capture.first("conv2").grad
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError


@dataclass(eq=False)
class Call:
    """One call of a watched module."""

    name: str
    module: nn.Module
    forward: int  # which forward pass of the model in the block it belongs to: 0, 1, ...
    use: int  # how many calls of the same module came before it in that forward pass
    entered: int  # when it began, counting every watched call: containers begin before their children
    input: Any = None  # `keep` of its first positional input, if inputs=True
    output: Any = None  # `keep` of its output, once it has finished
    finished: bool = False  # False: it raised (or is still running)
    grad: torch.Tensor | None = None  # d score / d output, after `Capture.backward(score)`

    @property
    def leaf(self) -> bool:
        return not any(True for _ in self.module.children())


def named_leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every named module without children: the layers that do the computing."""
    return [
        (name, module) for name, module in model.named_modules() if name and not any(True for _ in module.children())
    ]


class Capture:
    """Inside the `with` block, records every call of the watched modules of `model` (names or modules; None: every
    named module, containers included). `calls` holds them in the order they finish; `running` those that began
    and have not finished (after an error: the layer it came from, innermost last).

    A module called more than once is recorded once per call (`use` 0, 1, ... within each forward pass of
    `model`); `first(layer)` and `last(layer)` pick one, and cnnlab's layer names mean the first use.

    `keep` decides what is held of each output (and of the first input, with inputs=True): by default the object
    itself, still attached to the autograd graph, so that `backward` can reach it. An in-place op after the module
    (ReLU(inplace=True)) then changes the held tensor as it changes the model's; keep a copy (`keep=copied`) to
    hold the values as the module gave them. `stop_after` (a watched module, or several): the forward pass ends as
    soon as each has finished its first call (the rest of the model is not run), and the `with` block is left
    there, quietly.

    Every hook is removed when the block ends, by an exception too; nothing is left on the model.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str | nn.Module] | None = None,
        *,
        keep: Callable[[Any], Any] | None = None,
        inputs: bool = False,
        stop_after: nn.Module | Iterable[nn.Module] | None = None,
    ):
        self.model = model
        names = {}
        for name, module in model.named_modules():
            names.setdefault(module, name)
        if layers is None:
            layers = [module for module, name in names.items() if name]
        self.watched: dict[nn.Module, str] = {}
        for layer in layers:
            module = _module(model, layer)
            self.watched.setdefault(module, names.get(module) or type(module).__name__)
        self.keep = keep or (lambda value: value)
        self.inputs = inputs
        if isinstance(stop_after, nn.Module):
            stop_after = [stop_after]
        self.stop_after = set(stop_after or ())
        self._to_finish = set(self.stop_after)  # of stop_after, those not yet finished in this forward pass
        self.calls: list[Call] = []
        self.running: list[Call] = []
        self._handles: list = []
        self._forward, self._entered, self._uses = -1, 0, {}

    def __enter__(self) -> Capture:
        self._handles.append(self.model.register_forward_pre_hook(self._new_forward))
        for module in self.watched:
            self._handles.append(module.register_forward_pre_hook(self._enter))
            self._handles.append(module.register_forward_hook(self._leave))
        return self

    def __exit__(self, kind, error, _traceback) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return isinstance(error, _Stop) and error.capture is self  # stop_after's early end is not an error

    def _new_forward(self, _model, _inputs) -> None:
        self._forward += 1
        self._uses.clear()
        self._to_finish = set(self.stop_after)

    def _enter(self, module, inputs) -> None:
        use = self._uses.get(module, 0)
        self._uses[module] = use + 1
        first = self.keep(inputs[0]) if self.inputs and inputs else None
        call = Call(self.watched[module], module, max(self._forward, 0), use, self._entered, first)
        self._entered += 1
        self.running.append(call)

    def _leave(self, module, _inputs, output) -> None:  # returns None: a hook's return value replaces the output
        call = next(c for c in reversed(self.running) if c.module is module)
        self.running.remove(call)
        call.output, call.finished = self.keep(output), True
        self.calls.append(call)
        if module in self._to_finish:
            self._to_finish.discard(module)
            if not self._to_finish:
                raise _Stop(self)

    def of(self, layer: str | nn.Module) -> list[Call]:
        """Every finished call of one watched layer, in order."""
        module = _module(self.model, layer)
        if module not in self.watched:
            raise ValueError(f"{layer!r} is not watched by this capture")
        return [c for c in self.calls if c.module is module]

    def first(self, layer: str | nn.Module) -> Call:
        """The layer's first call: what a layer name means in cnnlab."""
        return self._one(layer, 0)

    def last(self, layer: str | nn.Module) -> Call:
        return self._one(layer, -1)

    def _one(self, layer, index: int) -> Call:
        calls = self.of(layer)
        if not calls:
            name, kind = self.watched[_module(self.model, layer)], type(_module(self.model, layer)).__name__
            raise CnnlabError(
                f"the layer {name if name == kind else f'{name} ({kind})'} is not used by the model's forward pass; "
                "choose another (`cnnlab layers RUN`)"
            )
        return calls[index]

    def backward(self, score: torch.Tensor) -> None:
        """The gradient of the scalar `score` with respect to every held output that is a tensor in its graph, into
        each call's `grad` (None where the score does not depend on it). Parameters' `.grad` are left alone."""
        held = [c for c in self.calls if isinstance(c.output, torch.Tensor) and c.output.requires_grad]
        grads = torch.autograd.grad(score, [c.output for c in held], allow_unused=True)
        for call, grad in zip(held, grads):
            call.grad = grad


def copied(value):
    """A `keep` that holds a detached copy of a tensor (anything else as it is): what later in-place ops spare."""
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _module(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        raise CnnlabError(f"unknown layer {layer!r}; `cnnlab layers RUN` lists the model's layers")
    return modules[layer]


class _Stop(Exception):
    """Raised by a hook to end the forward pass once `stop_after` has run; swallowed by its own capture."""

    def __init__(self, capture: Capture):
        super().__init__("capture stopped the forward pass")
        self.capture = capture
