"""A model's layers, one row each: output shape, parameters, multiply-accumulates, kernel, stride, padding.

Read from one walk through the forward pass (`cnnlab.models.layers.trace`), a row per call of a leaf module. The
model is built on PyTorch's "meta" device when it can be, so even VGG-19 at 224×224 is summarized instantly with no
memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.layers import trace


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple
    parameters: int
    macs: int
    geometry: str  # "k3 s1 p1" for convolutions and pools, "" otherwise


def _geometry(module: nn.Module) -> str:
    parts = []
    for attr, tag in (("kernel_size", "k"), ("stride", "s"), ("padding", "p")):
        value = getattr(module, attr, None)
        if value is None or isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            continue
        value = value if isinstance(value, (tuple, list)) else (value,)
        parts.append(tag + ("x".join(map(str, value)) if len(set(value)) > 1 else str(value[0])))
    return " ".join(parts)


def _macs(module: nn.Module, output_shape: tuple) -> int:
    per_sample = math.prod(output_shape[1:])
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def layer_rows(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """One row per call of a leaf module, in the order they run, for a batch of one (C, H, W) input."""
    return [
        LayerRow(
            c.name,
            type(c.module).__name__,
            c.output_shape[1:],
            sum(p.numel() for p in c.module.parameters(recurse=False)),
            _macs(c.module, c.output_shape),
            _geometry(c.module),
        )
        for c in trace(model, input_shape)
        if c.leaf and c.output_shape is not None
    ]


def parameters_outside(model: nn.Module, rows: list[LayerRow]) -> dict[str, int]:
    """Parameter counts, by top-level name, of what no row holds: weights a model keeps itself (CapsNet's routing
    matrices) and layers its forward does not run (CapsNet's decoder, used only by its loss)."""
    ran, outside = {r.name for r in rows}, {}
    for name, p in model.named_parameters():
        if name.rpartition(".")[0] not in ran:
            top = name.split(".")[0]
            outside[top] = outside.get(top, 0) + p.numel()
    return outside


def summary_table(model: nn.Module, input_shape: tuple[int, int, int], classes: int | None = None) -> str:
    rows = layer_rows(model, input_shape)
    width = max(24, *(len(r.name) for r in rows))
    lines = [f"{'layer':<{width}} {'type':<18} {'output shape':<16} {'geometry':<12} {'parameters':>12} {'MACs':>15}"]
    for r in rows:
        shape = "x".join(map(str, r.output_shape))
        lines.append(f"{r.name:<{width}} {r.kind:<18} {shape:<16} {r.geometry:<12} {r.parameters:>12,} {r.macs:>15,}")
    outside = parameters_outside(model, rows)
    if outside:
        lines.append(
            "\nparameters in no row above (the model's own weights, or layers forward does not run): "
            + ", ".join(f"{name} {count:,}" for name, count in outside.items())
        )
    total_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    outputs = sum(math.prod(r.output_shape) for r in rows)
    counted = f", {classes:,} classes" if classes else ""  # the last layer's size depends on it
    lines.append(
        f"\ninput {'x'.join(map(str, input_shape))}{counted}: {total_params:,} parameters "
        f"({trainable:,} trainable, {total_params - trainable:,} frozen), "
        f"{sum(r.macs for r in rows):,} multiply-accumulates "
        "(convolutions and linear layers) per image"
    )
    lines.append(
        f"memory in fp32: weights {4 * total_params / 2**20:,.1f} MiB; the layers' outputs "
        f"{4 * outputs / 2**20:,.2f} MiB per image, which training keeps for the backward pass "
        "(gradients and the optimizer add 1-3x the weights)"
    )
    lines.append("geometry: k kernel, s stride, p padding; output side = (W - k + 2p) / s + 1, rounded down")
    return "\n".join(lines)


def summarize(name: str, model_args: dict, input_shape: tuple[int, int, int]) -> str:
    """The table for registered model `name` built with `model_args`, on one (C, H, W) input. It is built on the
    meta device (instant, no memory) when every op it uses can run there, else for real."""
    from cnnlab.errors import CnnlabError
    from cnnlab.models import create_model

    try:
        with torch.device("meta"):
            return summary_table(create_model(name, **model_args), input_shape, model_args.get("num_classes"))
    except (RuntimeError, NotImplementedError):
        pass
    try:
        return summary_table(create_model(name, **model_args), input_shape, model_args.get("num_classes"))
    except RuntimeError as e:
        raise CnnlabError(
            f"{name} cannot take a {'x'.join(map(str, input_shape))} input ({str(e).splitlines()[0]})"
        ) from None


def model_table() -> str:
    """Every registered model with its parameter count at its own input shape: ImageNet-shaped models with
    ImageNet's 1000 classes (the counts published for them), the others with 10."""
    from cnnlab.models import MODELS, count_parameters, create_model

    lines = [f"{'model':<16} {'parameters':>12}  {'input':<10} {'classes':>7}  description"]
    for name, spec in MODELS.items():
        classes = listed_classes(spec)
        with torch.device("meta"):  # counts without allocating: VGG19 alone would take half a gigabyte
            params = count_parameters(create_model(name, num_classes=classes))
        shape = "x".join(map(str, spec.default_input))
        lines.append(f"{name:<16} {params:>12,}  {shape:<10} {classes:>7}  {spec.description}")
    return "\n".join(lines)


def listed_classes(spec) -> int:
    """The class count a model is listed and summarized with: ImageNet's 1000 for ImageNet-shaped models (their
    published parameter counts), else 10."""
    return 1000 if spec.default_input == (3, 224, 224) else 10
