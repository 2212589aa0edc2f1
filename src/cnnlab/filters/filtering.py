"""Applying a kernel to an image with OpenCV's `filter2D`, the lesson's tool.

`filter2D` computes a correlation: out[y, x] = sum over (i, j) of kernel[i, j] * image[y + i - cy, x + j - cx],
where (cy, cx) is the kernel's centre. It does not flip the kernel, exactly like `nn.Conv2d`. Because the
output pixel sits under the centre, kernels must have odd sizes here; near the image border the missing
pixels are made up by the border mode.
"""

from __future__ import annotations

import cv2
import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.filters.kernels import KERNELS

# name -> OpenCV border type; `wrap` is done by padding first, because filter2D refuses BORDER_WRAP.
BORDERS = {
    "reflect-101": cv2.BORDER_REFLECT_101,  # gfedcb|abcdefgh|gfedcba  (OpenCV's default)
    "reflect": cv2.BORDER_REFLECT,  # fedcba|abcdefgh|hgfedcb
    "replicate": cv2.BORDER_REPLICATE,  # aaaaaa|abcdefgh|hhhhhhh
    "constant": cv2.BORDER_CONSTANT,  # 000000|abcdefgh|0000000  (what nn.Conv2d's padding does)
    "wrap": cv2.BORDER_WRAP,  # cdefgh|abcdefgh|abcdefg  (what the Fourier transform assumes)
}


def check_centred(kernel: np.ndarray) -> None:
    """filter2D writes each result under the kernel's centre pixel; an even size has no centre, so refuse it."""
    height, width = kernel.shape
    if height % 2 == 0 or width % 2 == 0:
        raise CnnlabError(
            f"kernel is {height}x{width}, but filtering needs odd sizes so the kernel has a centre "
            "pixel; add a row/column of zeros, or use `cnnlab conv-demo`, which takes any size"
        )


def apply_kernel(image: np.ndarray, kernel: np.ndarray, border: str = "reflect-101") -> np.ndarray:
    """Correlate a grayscale (H, W) or colour (H, W, C) image with `kernel`, channel by channel.

    Returns float32 of the image's shape, unscaled: edge filters give negative values too.
    """
    if border not in BORDERS:
        raise CnnlabError(f"unknown border mode {border!r}; choose one of {', '.join(BORDERS)}")
    kernel = np.asarray(kernel, dtype=np.float64)
    check_centred(kernel)
    image = np.asarray(image, dtype=np.float32)
    if border == "wrap":
        pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
        padded = cv2.copyMakeBorder(image, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_WRAP)
        result = cv2.filter2D(padded, cv2.CV_32F, kernel)
        return result[pad_y : pad_y + image.shape[0], pad_x : pad_x + image.shape[1]]
    return cv2.filter2D(image, cv2.CV_32F, kernel, borderType=BORDERS[border])


def blur(image: np.ndarray, border: str = "reflect-101") -> np.ndarray:
    """The lesson's exercise: smooth with the 5x5 `gaussian` first, so edge filters answer to shapes, not noise."""
    return apply_kernel(image, KERNELS["gaussian"].matrix, border)
