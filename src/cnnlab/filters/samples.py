"""Sample pictures drawn by code, so every command has an example that needs no download, and `load_picture`,
which reads what a command is given: `sample:NAME` or an image file.

Each sample is an RGB uint8 array of shape (H, W, 3), like every image in cnnlab (see `cnnlab.images`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.images import read_array

AA = cv2.LINE_AA  # anti-aliased curves, so circles look round rather than jagged
SAMPLE_PREFIX = "sample:"


def city() -> np.ndarray:
    """A street: buildings with window grids, a car, a tree, a zebra crossing, the sun."""
    height, width = 256, 384
    sky = np.linspace(235, 170, 170)[:, None] * np.array([0.6, 0.85, 1.0])  # pale blue down to blue
    image = np.zeros((height, width, 3), np.uint8)
    image[:170] = sky[:, None, :].astype(np.uint8)
    image[170:] = (70, 70, 70)  # asphalt
    cv2.circle(image, (330, 45), 24, (255, 215, 80), -1, AA)  # sun
    buildings = [
        (10, 60, 90, (170, 160, 150)),
        (75, 90, 125, (160, 110, 90)),
        (170, 40, 70, (140, 150, 170)),
        (215, 110, 110, (120, 120, 120)),
    ]  # x, top, width, colour
    for x, top, w, colour in buildings:
        cv2.rectangle(image, (x, top), (x + w - 1, 169), colour, -1)
        for wy in range(top + 8, 160, 16):  # windows: a regular grid
            for wx in range(x + 6, x + w - 12, 14):
                cv2.rectangle(image, (wx, wy), (wx + 7, wy + 9), (230, 200, 60), -1)
    cv2.rectangle(image, (340, 120), (349, 169), (90, 60, 30), -1)  # tree trunk
    cv2.circle(image, (345, 110), 26, (40, 130, 40), -1, AA)  # tree crown
    image[170:174] = (200, 200, 200)  # kerb
    for x in range(8, width, 48):  # dashed centre line
        image[226:230, x : x + 26] = (235, 235, 235)
    for x in range(240, 360, 16):  # zebra crossing: vertical stripes
        image[178:222, x : x + 8] = (245, 245, 245)
    cv2.rectangle(image, (40, 188), (180, 222), (200, 40, 40), -1)  # car body (red)
    cv2.fillPoly(image, [np.array([[70, 188], [90, 164], [150, 164], [168, 188]])], (200, 40, 40), AA)
    cv2.fillPoly(image, [np.array([[80, 186], [95, 168], [145, 168], [158, 186]])], (150, 200, 230), AA)
    cv2.line(image, (120, 168), (120, 186), (200, 40, 40), 4)  # door pillar between windows
    for x in (75, 150):  # wheels with hubs
        cv2.circle(image, (x, 224), 15, (25, 25, 25), -1, AA)
        cv2.circle(image, (x, 224), 6, (170, 170, 170), -1, AA)
    return image


def stripes(height: int = 256, width: int = 256, period: int = 16) -> np.ndarray:
    """Vertical black and white stripes, a period of 16 pixels by default: one frequency, width / period cycles."""
    row = np.where(np.arange(width) % period < period // 2, 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.tile(row, (height, 1)), cv2.COLOR_GRAY2RGB)


def checkerboard(size: int = 256, square: int = 32) -> np.ndarray:
    """Black and white squares: vertical and horizontal edges of equal strength."""
    index = np.arange(size) // square
    board = ((index[:, None] + index[None, :]) % 2 * 255).astype(np.uint8)
    return cv2.cvtColor(board, cv2.COLOR_GRAY2RGB)


def shapes() -> np.ndarray:
    """A circle, a square and a triangle on grey: edges in every direction."""
    image = np.full((256, 256, 3), 128, np.uint8)
    cv2.circle(image, (70, 70), 45, (255, 255, 255), -1, AA)
    cv2.rectangle(image, (145, 30), (225, 110), (0, 0, 0), -1)
    cv2.fillPoly(image, [np.array([[128, 140], [210, 235], [46, 235]])], (220, 220, 220), AA)
    return image


def zoneplate(size: int = 256) -> np.ndarray:
    """Rings that get finer outwards: the local frequency grows with the distance from the centre."""
    y, x = np.mgrid[:size, :size] - size / 2
    rings = 127.5 + 127.5 * np.cos(np.pi * (x**2 + y**2) / (2 * size))  # r / (2 size) cycles per pixel
    return cv2.cvtColor(rings.astype(np.uint8), cv2.COLOR_GRAY2RGB)


def car() -> np.ndarray:
    """The red car of the city picture, cropped square: something for a CIFAR-10 model to classify."""
    return np.ascontiguousarray(city()[140:250, 30:195][:, 27:137])


def digit(value: int) -> np.ndarray:
    """A digit drawn in a thick stroke, then centred and sized the way MNIST's were (28x28, white on black)."""
    from cnnlab.images import digit_like_mnist

    canvas = np.zeros((112, 112), np.uint8)
    if value == 0:  # the fonts' zero is slashed, unlike a handwritten one
        cv2.ellipse(canvas, (56, 56), (26, 40), 0, 0, 360, 255, 16, AA)
    elif value == 1:  # and their one has a foot
        cv2.polylines(canvas, [np.array([[44, 30], [60, 16], [56, 96]])], False, 255, 15, AA)
    else:
        cv2.putText(canvas, str(value), (22, 92), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 3.2, 255, 10, AA)
    return cv2.cvtColor(digit_like_mnist(canvas), cv2.COLOR_GRAY2RGB)


def _digit_sample(value: int):
    def draw() -> np.ndarray:
        return digit(value)

    draw.__doc__ = f"The digit {value} drawn by code and centred like MNIST's digits (28x28): for MNIST models."
    return draw


SAMPLES = {
    "city": city,
    "stripes": stripes,
    "checkerboard": checkerboard,
    "shapes": shapes,
    "zoneplate": zoneplate,
    "car": car,
    **{f"digit{value}": _digit_sample(value) for value in range(10)},
}


def sample_image(name: str) -> np.ndarray:
    if name not in SAMPLES:
        raise CnnlabError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)} (see `cnnlab samples`)")
    return SAMPLES[name]()


def describe(name: str) -> str:
    """The first line of the sample's docstring."""
    return SAMPLES[name].__doc__.splitlines()[0]


def load_picture(source: str, color: bool = False) -> np.ndarray:
    """`sample:NAME` or an image file -> uint8 grey (H, W), or RGB (H, W, 3) when `color`."""
    if not source.startswith(SAMPLE_PREFIX):
        return read_array(source, color)
    image = sample_image(source[len(SAMPLE_PREFIX) :])
    return image if color else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def image_stem(source: str) -> str:
    """`photo` for `dir/photo.jpg`, `city` for `sample:city`: the start of default output file names."""
    return source[len(SAMPLE_PREFIX) :] if source.startswith(SAMPLE_PREFIX) else Path(source).stem
