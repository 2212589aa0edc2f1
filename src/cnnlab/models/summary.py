"""A model's layers, one row each: output shape, parameters, multiply-accumulates, kernel, stride, padding.

Found by running one input through the model with forward hooks on every leaf module. The model is built on
PyTorch's "meta" device when it can be, so even VGG-19 at 224×224 is summarized instantly with no memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple
    parameters: int
    macs: int
    geometry: str        # "k3 s1 p1" for convolutions and pools, "" otherwise


def _geometry(module: nn.Module) -> str:
    parts = []
    for attr, tag in (("kernel_size", "k"), ("stride", "s"), ("padding", "p")):
        value = getattr(module, attr, None)
        if value is None or isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            continue
        value = value if isinstance(value, (tuple, list)) else (value,)
        parts.append(tag + ("x".join(map(str, value)) if len(set(value)) > 1 else str(value[0])))
    return " ".join(parts)


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    per_sample = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def layer_rows(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """One row per leaf module, in the order they run, for a batch of one (C, H, W) input."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            def hook(mod, _inputs, output, name=name):
                out = output[0] if isinstance(output, (tuple, list)) else output
                rows.append(LayerRow(name, type(mod).__name__, tuple(out.shape[1:]),
                                     sum(p.numel() for p in mod.parameters(recurse=False)), _macs(mod, out),
                                     _geometry(mod)))
            hooks.append(module.register_forward_hook(hook))
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def parameters_outside(model: nn.Module, rows: list[LayerRow]) -> dict[str, int]:
    """Parameter counts, by top-level name, of what no row holds: weights a model keeps itself (CapsNet's routing
    matrices) and layers its forward does not run (CapsNet's decoder, used only by its loss)."""
    ran, outside = {r.name for r in rows}, {}
    for name, p in model.named_parameters():
        if name.rpartition(".")[0] not in ran:
            top = name.split(".")[0]
            outside[top] = outside.get(top, 0) + p.numel()
    return outside


def summary_table(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
    rows = layer_rows(model, input_shape)
    width = max(24, *(len(r.name) for r in rows))
    lines = [f"{'layer':<{width}} {'type':<18} {'output shape':<16} {'geometry':<12} {'parameters':>12} {'MACs':>15}"]
    for r in rows:
        shape = "x".join(map(str, r.output_shape))
        lines.append(f"{r.name:<{width}} {r.kind:<18} {shape:<16} {r.geometry:<12} {r.parameters:>12,} {r.macs:>15,}")
    outside = parameters_outside(model, rows)
    if outside:
        lines.append("\nparameters in no row above (the model's own weights, or layers forward does not run): "
                     + ", ".join(f"{name} {count:,}" for name, count in outside.items()))
    total_params = sum(p.numel() for p in model.parameters())
    lines.append(f"\ninput {'x'.join(map(str, input_shape))}: {total_params:,} parameters, "
                 f"{sum(r.macs for r in rows):,} multiply-accumulates (convolutions and linear layers) per image")
    lines.append("geometry: k kernel, s stride, p padding; output side = (W - k + 2p) / s + 1, rounded down")
    return "\n".join(lines)
