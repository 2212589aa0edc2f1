"""Frequency in an image: the 2-D Fourier transform, filtering in the frequency domain, a kernel's response.

The transform is centred (`fftshift`): zero frequency, the image's mean, sits in the middle; a pattern that
repeats `k` times across the image width lights up the points `k` bins left and right of the centre.
Distances from the centre are counted in such bins, "cycles per image".
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import CnnlabError

KEEP = ("low", "high")


def _check_gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise CnnlabError(f"the Fourier transform here needs a grayscale (H, W) image, got shape {image.shape}")
    return image


def centred_fft(image: np.ndarray) -> np.ndarray:
    """The complex 2-D Fourier transform with zero frequency moved to the centre."""
    return np.fft.fftshift(np.fft.fft2(_check_gray(image)))


def spectrum(image: np.ndarray) -> np.ndarray:
    """log(1 + |F|): the magnitudes span many decades, so the log makes the faint high frequencies visible."""
    return np.log1p(np.abs(centred_fft(image)))


def frequency_mask(shape: tuple[int, int], keep: str, radius: float) -> np.ndarray:
    """1 where a centred spectrum is kept: inside the circle of `radius` bins (`low`) or outside it (`high`)."""
    if keep not in KEEP:
        raise CnnlabError(f"keep must be 'low' or 'high', got {keep!r}")
    if radius <= 0:
        raise CnnlabError(f"radius must be a positive number of cycles per image, got {radius}")
    height, width = shape
    v = np.arange(height) - height // 2  # fftshift puts zero frequency at index n // 2
    u = np.arange(width) - width // 2
    inside = np.hypot(*np.meshgrid(u, v)) <= radius
    return (inside if keep == "low" else ~inside).astype(np.float64)


def frequency_filter(image: np.ndarray, keep: str, radius: float) -> np.ndarray:
    """Zero the frequencies outside (`low`) or inside (`high`) the circle, and transform back to an image.

    The cut is sharp, so expect faint ripples ("ringing") beside strong edges.
    """
    shifted = centred_fft(image)
    mask = frequency_mask(shifted.shape, keep, radius)
    return np.real(np.fft.ifft2(np.fft.ifftshift(shifted * mask)))


def kernel_response(kernel: np.ndarray, size: int = 64) -> np.ndarray:
    """|F| of the kernel zero-padded to size x size: how much the kernel lets through of each frequency.

    The centre is the gain on flat areas (the sum of the weights); the edges are the finest patterns.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if max(kernel.shape) > size:
        raise CnnlabError(
            f"kernel is {kernel.shape[0]}x{kernel.shape[1]}, larger than the response size {size}; use a larger --size"
        )
    return np.abs(np.fft.fftshift(np.fft.fft2(kernel, s=(size, size))))


def strongest_frequency(image: np.ndarray) -> tuple[int, int]:
    """(horizontal, vertical) cycles per image of the brightest spectrum point other than the mean.

    A real image's spectrum is symmetric, (u, v) ties with (-u, -v); this returns the one with u > 0, or v > 0.
    """
    magnitude = np.abs(centred_fft(image))
    centre_y, centre_x = magnitude.shape[0] // 2, magnitude.shape[1] // 2
    magnitude[centre_y, centre_x] = 0
    y, x = np.unravel_index(np.argmax(magnitude), magnitude.shape)
    u, v = int(x - centre_x), int(y - centre_y)
    return (u, v) if (u, v) > (0, 0) else (-u, -v)
