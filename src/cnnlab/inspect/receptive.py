"""Which input pixels one output unit of a layer can see: its receptive field.

For a chain of layers the field follows from arithmetic. Going through a layer with kernel k (dilation d),
stride s and padding p, where the field so far is `size` pixels wide, neighbouring units are `jump` pixels apart
and unit 0 starts at pixel `start`:

    start -= p * jump        size += d * (k - 1) * jump        jump *= s

(1, 1, 0 at the input.) Unit i then sees pixels start + i * jump ... start + i * jump + size - 1, clipped to the
image. Each tensor of one forward pass is followed through the torch ops that make it, so branches are fine: where
two join (a ResNet block's shortcut added to its output) the field is the union of theirs. Where an op changes the
size in a way this arithmetic does not know (a global pool, a resize), `gradient_box` finds the field instead:
the pixels where the unit's gradient is nonzero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.models.capture import Capture
from cnnlab.models.layers import layer_output

WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
UNKNOWN = "unknown"  # a window whose padding is given as a word


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
    """The field of `layer`'s units worked out from kernels, strides and paddings, following each tensor through
    the ops of one forward pass; None where an op changes the size in a way the arithmetic does not know."""
    follow = _FollowFields()
    x = torch.zeros(1, *input_shape, device=next(model.parameters(), torch.empty(0)).device)
    follow.fields[id(x)] = (x, _Field((1, 1), (1, 1), (0, 0)))
    # a conv or pool module is read from its settings, whatever ops its forward uses (cnnlab's fast MaxPool2d)
    handles = [m.register_forward_hook(follow.window_module) for m in model.modules() if isinstance(m, WINDOWED)]
    was_training = model.training
    try:
        with torch.no_grad(), follow, Capture(model, [layer], stop_after=layer) as seen:
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    found = [call.output for call in seen.calls]
    if not found or not isinstance(found[0], torch.Tensor):
        return None
    field = follow.field(found[0])
    return None if field is None else ReceptiveField(field.size, field.jump, field.start)


@dataclass(frozen=True)
class _Field:
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def through(self, kernel, stride, padding, dilation) -> _Field:
        """The field after a sliding window (a conv or a pool) over a tensor with this field."""
        size, jump, start = list(self.size), list(self.jump), list(self.start)
        for a in (0, 1):
            start[a] -= padding[a] * jump[a]
            size[a] += dilation[a] * (kernel[a] - 1) * jump[a]
            jump[a] *= stride[a]
        return _Field(tuple(size), tuple(jump), tuple(start))

    def union(self, other: _Field) -> _Field | None:
        """Two branches joined (a ResNet's shortcut added to its block): the pixels either sees."""
        if other.jump != self.jump:
            return None
        start = tuple(min(a, b) for a, b in zip(self.start, other.start))
        end = tuple(max(a + n, b + m) for a, n, b, m in zip(self.start, self.size, other.start, other.size))
        return _Field(tuple(e - s for e, s in zip(end, start)), self.jump, start)


class _FollowFields(TorchFunctionMode):
    """Sees every torch op of a forward pass and gives each [N, C, H, W] result the field of its units: a window
    op from its arguments, an op that keeps H and W (ReLU, batch norm, an addition) the union of its inputs'
    fields, any other op none."""

    def __init__(self):
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, _Field | None]] = {}  # id -> (the tensor, kept alive; field)

    def field(self, tensor) -> _Field | None:
        kept = self.fields.get(id(tensor))
        return kept[1] if kept is not None and kept[0] is tensor else None

    def window_module(self, module, inputs, output):
        """Forward hook of a conv or pool module: its output's field from its input's and its settings."""
        field = self.field(inputs[0]) if inputs else None
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            if field is not None and not isinstance(module.padding, str):
                k, s, p = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
                field = field.through(k, s, p, _pair(getattr(module, "dilation", 1)))
            else:
                field = None
            self.fields[id(output)] = (output, field)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        result = output[0] if isinstance(output, tuple) and output else output  # max_pool2d with its indices
        if isinstance(result, torch.Tensor) and result.ndim == 4:
            self.fields[id(result)] = (result, self._field_of(getattr(func, "__name__", ""), args, kwargs, result))
        return output

    def _field_of(self, name: str, args, kwargs, result) -> _Field | None:
        flat = [b for a in args for b in (a if isinstance(a, (list, tuple)) else [a])]  # torch.cat's list too
        images = [a for a in flat if isinstance(a, torch.Tensor) and a.ndim == 4]
        if not images:
            return None
        first = self.field(images[0])
        if first is None:
            return None
        window = _window(name, args, kwargs)
        if window is UNKNOWN:
            return None
        if window is not None:
            return first.through(*window)
        if any(a.shape[2:] != result.shape[2:] for a in images):
            return None
        for other in images[1:]:
            other_field = self.field(other)
            first = None if other_field is None else first.union(other_field)
            if first is None:
                return None
        return first


def _window(name: str, args, kwargs):
    """(kernel, stride, padding, dilation) of a conv or pool op from its arguments; None for any other op."""

    def arg(i, key, default):
        return args[i] if len(args) > i else kwargs.get(key, default)

    if name == "conv2d":
        kernel, stride = args[1].shape[2:], arg(3, "stride", 1)
        padding, dilation = arg(4, "padding", 0), arg(5, "dilation", 1)
    elif name in ("max_pool2d", "avg_pool2d"):
        kernel = arg(1, "kernel_size", 1)
        stride = arg(2, "stride", None) or kernel  # a pool's stride defaults to its kernel
        padding = arg(3, "padding", 0)
        dilation = arg(4, "dilation", 1) if name == "max_pool2d" else 1
    else:
        return None
    if isinstance(padding, str):  # "same" / "valid": let the gradient tell
        return UNKNOWN
    return _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)


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
