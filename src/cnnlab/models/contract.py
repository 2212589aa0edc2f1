"""The model contract: what cnnlab needs of any network, written down once.

A network is any `nn.Module` that cnnlab can use this way:
- **input**: a float batch `[N, C, H, W]`, the images of the run's data set as `Preprocess` makes them (pixels / 255,
  minus the training split's channel mean, over its std); `C, H, W` is the data set's shape.
- **output** (`outputs`): `"logits"`, class scores `[N, classes]` before softmax; or `"capsules"`, capsule lengths
  `[N, classes]` that are probabilities already (such a model also has `reconstruct(x)`).
- **loss** (optional): a method `loss(x, y) -> (loss, scores)`; without it training uses cross-entropy on the logits.
- **layers**: its named modules; explanations default to the last `nn.Conv2d` (or the module an `inspect_layer`
  attribute names), and any named module whose output is a tensor can be asked for by name.

Two ways provide it. The registry's `ModelSpec` (`cnnlab models`) builds a network for a data set's shape and
declares its outputs. A learner's own `nn.Module` (a class or an instance) is taken as it is: its run record keeps an
`OwnModel`, which names the class, its parameters and its source, and the caller hands the class back to reload it.
cnnlab never imports the code a record names: the record is data, the code comes from the caller.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.capture import Capture, named_leaves

OUTPUTS = ("logits", "capsules")


@dataclass(frozen=True)
class Contract:
    """What a run's network takes and gives: read by everything that runs a trained model."""

    input_shape: tuple[int, int, int]  # C, H, W
    outputs: str = "logits"  # logits | capsules

    @property
    def capsules(self) -> bool:
        return self.outputs == "capsules"


@dataclass
class OwnModel:
    """A learner's own network as its run record keeps it: enough to check a class handed back, never to import."""

    module: str  # where the class was defined: "__main__" in a notebook, or "nets"
    qualname: str  # e.g. "Net"
    args: dict | None  # constructor keyword arguments, when cnnlab built it (None: unknown)
    parameters: dict  # state_dict name -> shape: what a class handed back must match
    source: str  # the class's code, for the learner to read (never run)

    @property
    def label(self) -> str:
        return f"{self.module}.{self.qualname}"


def is_model_class(value) -> bool:
    return isinstance(value, type) and issubclass(value, nn.Module)


def own_model(model, args: dict | None = None) -> tuple[nn.Module, OwnModel]:
    """A learner's network from a class (built with `args`) or an instance, and its description for the record."""
    if is_model_class(model):
        args = dict(args or {})
        model = model(**args)
    elif not isinstance(model, nn.Module):
        raise CnnlabError(
            f"expected a registered model's name, an nn.Module class or an instance; got {type(model).__name__}"
        )
    else:
        args = None  # how an instance was built is not known
    cls = type(model)
    return model, OwnModel(cls.__module__, cls.__qualname__, args, shapes(model), class_source(cls))


def shapes(model: nn.Module) -> dict:
    return {name: list(t.shape) for name, t in model.state_dict().items()}


def class_source(cls: type) -> str:
    """The class's code as text (empty when Python cannot find it, e.g. a class typed into a terminal)."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


def rebuild(model, own: OwnModel, where) -> nn.Module:
    """The caller's class (built with the recorded args) or instance, checked to have the recorded parameters."""
    if model is None:
        raise not_given(own, where)
    if is_model_class(model):
        try:
            model = model(**(own.args or {}))
        except TypeError as error:
            raise CnnlabError(
                f"{model.__qualname__}({', '.join(f'{k}={v!r}' for k, v in (own.args or {}).items())}) "
                f"failed ({error}); pass an instance built as for training instead"
            ) from None
    if not isinstance(model, nn.Module):
        raise CnnlabError(
            f"model= takes the nn.Module class (or an instance) the run was trained with; got {type(model).__name__}"
        )
    check_parameters(model, own, where)
    return model


def check_parameters(model: nn.Module, own: OwnModel, where) -> None:
    """One line naming the first difference between the model's parameters and the recorded ones."""
    have, want = shapes(model), own.parameters
    name = type(model).__name__
    missing, extra = [k for k in want if k not in have], [k for k in have if k not in want]
    if missing or extra:
        parts = [
            f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("lacks", missing), ("has extra", extra))
            if keys
        ]
        raise CnnlabError(f"{name} does not fit {where} ({own.label} was trained): it {'; '.join(parts)}")
    for key, shape in want.items():
        if have[key] != shape:  # the record's value as read (it may be anything): compared, not converted
            raise CnnlabError(
                f"{name} does not fit {where}: {key} is {have[key]} in it, {shape} in the run ({own.label} was trained)"
            )


def not_given(own: OwnModel, where) -> CnnlabError:
    """What to pass when a run of a learner's own network is opened without its code."""
    return CnnlabError(
        f"{where} holds your own network {own.label}; cnnlab never imports code a run folder names: "
        f"pass the class, e.g. cnnlab.load({str(where)!r}, model={own.qualname}) in Python, or "
        f"--trust FILE.py (the file that defines {own.qualname}) on the command line"
    )


def check_forward(model: nn.Module, shape: tuple[int, int, int], num_classes: int, data: str) -> None:
    """Two images through the model before any training: a size it cannot take, or the wrong number of class
    scores, is one line naming the layer, what it got and what it expected."""
    name = type(model).__name__
    was_training = model.training
    device = next(model.parameters(), torch.empty(0)).device
    images = f"{shape[1]}x{shape[2]} images with {shape[0]} channel(s) ({data})"
    capture = Capture(model, [m for _, m in named_leaves(model)], inputs=True)
    try:
        with torch.no_grad(), capture:
            out = model.eval()(torch.zeros(2, *shape, device=device))
    except (RuntimeError, ValueError, IndexError) as error:
        raise CnnlabError(f"{name} cannot take {images}: {_where_it_failed(capture, error)}") from None
    finally:
        model.train(was_training)
    scores = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or scores.shape[0] != 2:
        got = list(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise CnnlabError(
            f"{name} on a batch of 2 {images} returned {got}; the contract is [batch, classes] "
            f"= [2, {num_classes}] (a reshape such as x.view(-1, N) with the wrong N mixes images)"
        )
    if scores.shape[1] != num_classes:
        raise CnnlabError(
            f"{name} outputs {scores.shape[1]} class scores per image but {data} has {num_classes} "
            f"classes: make its last layer output {num_classes}"
        )


def _where_it_failed(capture: Capture, error: Exception) -> str:
    """The layer the error came from (entered, not left), else the one it followed (the last one left)."""
    message = str(error).splitlines()[0][:160]
    if capture.running:
        call, x = capture.running[-1], capture.running[-1].input
        got = f"input {list(x.shape[1:])} per image" if isinstance(x, torch.Tensor) else "an input"
        layer = f"layer {call.name!r} ({type(call.module).__name__})"
        return f"{layer} got {got} but expects {_expects(call.module)} ({message})"
    if capture.calls and isinstance(capture.calls[-1].output, torch.Tensor):
        call = capture.calls[-1]
        y = call.output
        values = y[0].numel()
        return (
            f"after layer {call.name!r} ({type(call.module).__name__}) gave {list(y.shape[1:])} = {values} values "
            f"per image, the forward failed: {message}{_reshape_hint(message, values)}"
        )
    return message


def _expects(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"{module.in_features} features"
    if isinstance(module, nn.Conv2d):
        return f"{module.in_channels} channels"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"{module.num_features} channels"
    return "another shape"


def _reshape_hint(message: str, values) -> str:
    wanted = re.search(r"shape '\[-1, (\d+)\]' is invalid", message)
    if not wanted:
        return ""
    return (
        f" (the network reshapes to {wanted[1]} values per image and these images give {values}: it was "
        "written for another image size)"
    )
