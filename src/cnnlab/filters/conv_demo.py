"""What a convolutional layer does to a picture: fixed filters in `nn.Conv2d`, then ReLU, then 2x2 max-pooling.

As in the Udacity lesson, the four filters are set by hand rather than learned, so one can predict the output:
filter 1 answers to dark-to-bright vertical edges, filter 2 is its negative, filters 3 and 4 are the same
turned on their side. `nn.Conv2d` correlates like `filter2D` but has no notion of a centre, so any size works;
it pads with zeros and its output is (W - F + 2P) / S + 1 pixels wide (rounded down).
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import CnnlabError, whole
from cnnlab.filters.kernels import check_kernel

_FILTER_1 = np.array([[-1, -1, 1, 1]] * 4, dtype=np.float32)
LESSON_FILTERS = np.stack([_FILTER_1, -_FILTER_1, _FILTER_1.T, -_FILTER_1.T])


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """(W - F + 2P) / S + 1, rounded down: how many places the filter fits along one side."""
    return (size - kernel + 2 * padding) // stride + 1


def explain_sizes(image_shape: tuple[int, int], filter_shape: tuple[int, int], stride: int, padding: int) -> str:
    """The output-size formula with this run's numbers filled in, for the terminal and the figure."""
    lines = ["output size = (W - F + 2P) / S + 1"]
    for side, size, kernel in zip(("height", "width"), image_shape, filter_shape):
        rounded = " (rounded down)" if (size - kernel + 2 * padding) % stride else ""
        lines.append(
            f"{side}: ({size} - {kernel} + 2*{padding}) / {stride} + 1 = "
            f"{output_size(size, kernel, stride, padding)}{rounded}"
        )
    return "\n".join(lines)


def check_filters(data) -> np.ndarray:
    """A list of 2-D kernels of one size (or a single 2-D kernel) -> float32 (N, KH, KW)."""
    if isinstance(data, np.ndarray):
        data = data.tolist()
    if not isinstance(data, list) or not data:
        raise CnnlabError("filters must be a non-empty list of 2-D kernels, e.g. [[[-1,1],[-1,1]], [[1,1],[-1,-1]]]")
    if isinstance(data[0], list) and all(isinstance(value, (int, float)) for value in data[0]):
        data = [data]  # one 2-D kernel: a list of one
    kernels = [check_kernel(item) for item in data]
    shapes = {kernel.shape for kernel in kernels}
    if len(shapes) > 1:
        raise CnnlabError(f"filters must all have the same size, got {' and '.join(f'{h}x{w}' for h, w in shapes)}")
    return np.stack(kernels).astype(np.float32)


def conv_demo(
    image: np.ndarray, filters: np.ndarray = LESSON_FILTERS, stride: int = 1, padding: int = 0
) -> dict[str, np.ndarray]:
    """Run a grayscale image through Conv2d(1, N, bias=False) with `filters` as weights, ReLU and MaxPool2d(2, 2).

    A uint8 image is scaled to 0..1 as in the lesson. Returns float32 arrays: `input` (H, W), `filters`
    (N, KH, KW), `conv` and `relu` (N, H', W'), `pooled` (N, H'//2, W'//2).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise CnnlabError(f"conv-demo needs a grayscale (H, W) image, got shape {image.shape}")
    whole(stride, "stride", 1)
    whole(padding, "padding", 0, max(image.shape))
    filters = check_filters(filters)
    pixels = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image.astype(np.float32)
    out_h, out_w = (output_size(n, f, stride, padding) for n, f in zip(image.shape, filters.shape[1:]))
    if out_h < 2 or out_w < 2:
        raise CnnlabError(
            f"a {filters.shape[1]}x{filters.shape[2]} filter with stride {stride} and padding {padding} "
            f"leaves a {max(out_w, 0)}x{max(out_h, 0)} output on a {image.shape[1]}x{image.shape[0]} "
            "image, too small for 2x2 pooling; use a larger image or a smaller stride"
        )

    import torch  # here, not at the top: the other commands in this package must start without it
    from torch import nn

    conv = nn.Conv2d(1, len(filters), kernel_size=filters.shape[1:], stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(filters).unsqueeze(1))  # (N, 1, KH, KW): one input channel
        conv_out = conv(torch.from_numpy(pixels)[None, None])[0]  # add then drop the batch and channel dims
        relu_out = torch.relu(conv_out)
        pooled = nn.MaxPool2d(2, 2)(relu_out)
    return {
        "input": pixels,
        "filters": filters,
        "conv": conv_out.numpy(),
        "relu": relu_out.numpy(),
        "pooled": pooled.numpy(),
    }
