"""Reading the picture a command works on (a file OpenCV can decode, or a drawn sample: `sample:city`), writing one."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes
from cnnlab.filters.samples import sample_image

SAMPLE_PREFIX = "sample:"


def read_image(source: str, color: bool = False) -> np.ndarray:
    """uint8 (H, W) grayscale, or (H, W, 3) in OpenCV's BGR order when `color`."""
    if source.startswith(SAMPLE_PREFIX):
        image = sample_image(source[len(SAMPLE_PREFIX):])
        return image if color else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = "no such file" if not path.exists() else error.strerror or str(error)
        raise CnnlabError(f"cannot read image {source}: {reason} (or use a sample such as sample:city)") from None
    # imdecode rather than imread: it stays silent on bad files (imread logs warnings) and takes any path.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CnnlabError(f"cannot read image {source}: not an image format OpenCV can decode (try PNG or JPEG)")
    return image


def image_stem(source: str) -> str:
    """`photo` for `dir/photo.jpg`, `city` for `sample:city`: the start of default output file names."""
    return source[len(SAMPLE_PREFIX):] if source.startswith(SAMPLE_PREFIX) else Path(source).stem


def write_image(path, image: np.ndarray) -> None:
    """A uint8 grayscale or BGR picture as a PNG, written atomically."""
    write_bytes(path, cv2.imencode(".png", image)[1].tobytes())
