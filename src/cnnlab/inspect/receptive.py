"""Which input pixels one output unit of a layer can see: its receptive field.

For a chain of layers the field follows from arithmetic. Going through a layer with kernel k (dilation d),
stride s and padding p, where the field so far is `size` pixels wide, neighbouring units are `jump` pixels apart
and unit 0 starts at pixel `start`:

    start -= p * jump        size += d * (k - 1) * jump        jump *= s

(1, 1, 0 at the input.) Unit i then sees pixels start + i * jump ... start + i * jump + size - 1, clipped to the
image. The layers are walked in the order the forward pass runs them; when that is not a plain chain (a ResNet
block's shortcut, a global pool, an op outside any module that changes the size), `gradient_box` finds the
field instead: the pixels where the unit's gradient is nonzero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.layers import layer_output, trace

WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, int]  # rows, columns of input pixels one unit sees
    jump: tuple[int, int]  # input pixels between neighbouring units
    start: tuple[int, int]  # first input pixel of unit (0, 0); negative: it starts in the padding

    def box(self, row: int, col: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of unit (row, col)'s field in the image; bottom and right exclusive."""
        top = self.start[0] + row * self.jump[0]
        left = self.start[1] + col * self.jump[1]
        return (max(top, 0), max(left, 0), min(top + self.size[0], image_hw[0]), min(left + self.size[1], image_hw[1]))


def receptive_field(model: nn.Module, layer: nn.Module, input_shape: tuple[int, int, int]) -> ReceptiveField | None:
    """The field of `layer`'s units worked out from kernels, strides and paddings; None if the layers up to it
    are not a plain chain."""
    calls = trace(model, input_shape, stop_at=layer)
    events = [(c.module, _spatial(c.input_shape), _spatial(c.output_shape)) for c in calls if c.leaf]
    out = next(c.output_shape for c in calls if c.module is layer)
    size, jump, start, hw = [1, 1], [1, 1], [0, 0], tuple(input_shape[1:])
    for module, in_hw, out_hw in events:
        if in_hw != hw or out_hw is None:
            return None
        if isinstance(module, WINDOWED):
            if isinstance(module.padding, str):  # "same" / "valid": let the gradient tell
                return None
            k, s, p = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
            d = _pair(getattr(module, "dilation", 1))
            for a in (0, 1):
                start[a] -= p[a] * jump[a]
                size[a] += d[a] * (k[a] - 1) * jump[a]
                jump[a] *= s[a]
        elif out_hw != in_hw:
            return None
        hw = out_hw
    if _spatial(out) != hw:
        return None
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def _spatial(shape: tuple | None) -> tuple[int, int] | None:
    return tuple(shape[2:]) if shape is not None and len(shape) == 4 else None


def gradient_box(
    model: nn.Module,
    layer: nn.Module,
    input_shape: tuple[int, int, int],
    channel: int,
    row: int,
    col: int,
    tries: int = 32,
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) around the pixels that change unit (channel, row, col) of the layer.

    One input has pixels whose gradient is zero by chance (a ReLU that is off, a max-pool that picked another
    pixel), so the union over a few random inputs is taken.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tries, *input_shape, generator=generator).requires_grad_()
    out = layer_output(model, x, layer)
    (grad,) = torch.autograd.grad(out[:, channel, row, col].sum(), x)
    rows, cols = grad.abs().sum((0, 1)).nonzero(as_tuple=True)
    if len(rows) == 0:
        return 0, 0, input_shape[1], input_shape[2]
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1
