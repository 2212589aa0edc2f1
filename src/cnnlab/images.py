"""Reading and writing image files: the one place where cnnlab turns files into pictures and back.

The colour convention, for all of cnnlab: an image array is uint8, RGB [H, W, 3] or grey [H, W], as PIL and
matplotlib use them (the models' batches put the channels first, [N, C, H, W], in the same RGB order).
OpenCV decodes and encodes in BGR order; that order exists only inside this module.

PIL and OpenCV are imported inside the functions: reading a photo for a model should not pay for OpenCV,
nor filtering a picture for PIL.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes


def open_image(path: str | Path):
    """Open one image (a PIL image) for prediction; a text file or a broken image becomes a one-line error."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise CnnlabError(f"{path}: not an image that can be read ({e.__class__.__name__}); "
                          "give a PNG, JPEG, BMP, GIF, TIFF or WebP file") from None


def to_mode(image, channels: int):
    """Any PIL image (palette, alpha, CMYK, 16-bit, ...) as RGB or L; transparency is composited on white."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode == "I;16" or image.mode == "I":
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 256).clip(0, 255).astype(np.uint8))
    return image.convert("RGB" if channels == 3 else "L")


def resize_center_crop(image, size: int):
    """Shorter side to `size`, then the central size×size square: the usual evaluation view of a photo."""
    from PIL import Image

    w, h = image.size
    if (w, h) == (size, size):
        return image
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def read_array(path: str | Path, color: bool = False) -> np.ndarray:
    """An image file decoded by OpenCV: uint8 grey (H, W), or RGB (H, W, 3) when `color`."""
    import cv2

    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        reason = "no such file" if not file.exists() else error.strerror or str(error)
        raise CnnlabError(f"cannot read image {path}: {reason} (or use a sample such as sample:city)") from None
    # imdecode rather than imread: it stays silent on bad files (imread logs warnings) and takes any path.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CnnlabError(f"cannot read image {path}: not an image format OpenCV can decode (try PNG or JPEG)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color else image


def write_png(path: str | Path, image: np.ndarray) -> None:
    """A uint8 grey (H, W) or RGB (H, W, 3) array as a PNG file, written atomically. RGBA (H, W, 4), such as a
    drawn figure's buffer, is written opaque: its alpha is dropped in the same pass that reorders the colours."""
    import cv2

    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    write_bytes(path, cv2.imencode(".png", image)[1].tobytes())
