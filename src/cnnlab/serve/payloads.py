"""What travels between the server and the page: images as data URLs, feature maps as bytes, inputs decoded once."""
from __future__ import annotations

import base64

import numpy as np
from pydantic import BaseModel, Field

from cnnlab.errors import CnnlabError
from cnnlab.images import open_image, png_bytes
from cnnlab.plots.base import to_display

MAX_UPLOAD_BYTES = 20_000_000     # a 50-MP JPEG is ~15 MB; a request larger than this is refused before decoding


class ImageInput(BaseModel):
    """An image as the page sends it: a data URL (`data:image/png;base64,...`) of any format PIL reads."""
    image: str = Field(description="data URL of a PNG, JPEG, BMP, GIF, TIFF or WebP image")


def decode_image(data_url: str, name: str = "upload"):
    """A data URL -> PIL image, with the size limits of `cnnlab.images.open_image`."""
    head, _, body = data_url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise CnnlabError(f"{name}: not a data URL (expected data:image/...;base64,...)")
    if len(body) * 3 // 4 > MAX_UPLOAD_BYTES:
        raise CnnlabError(f"{name}: {len(body) * 3 // 4 / 1e6:.0f} MB is over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB "
                          "upload limit")
    try:
        data = base64.b64decode(body, validate=True)
    except ValueError:
        raise CnnlabError(f"{name}: the data URL is not valid base64") from None
    if not data:
        raise CnnlabError(f"{name}: the image is empty")
    return open_image(data, name)


def png_data_url(image: np.ndarray) -> str:
    """uint8 grey [H, W] or RGB [H, W, 3] -> a PNG data URL (fast encoding: these are shown once)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, fast=True)).decode()


def pixels_data_url(pixels) -> str:
    """uint8 [C, H, W], the models' layout (a tensor or an array) -> a PNG data URL, grey or RGB."""
    return png_data_url(to_display(np.asarray(pixels))[0])


def channel_maps(maps: np.ndarray) -> dict:
    """Feature maps [C, h, w] -> {"shape", "data"}: each channel scaled to 0..255 on its own range, as uint8 bytes
    in base64 (C*h*w bytes, drawn by the page onto canvases: far cheaper than one PNG per channel)."""
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scaled = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1) * 255, 0)
    return {"shape": list(maps.shape), "data": base64.b64encode(scaled.astype(np.uint8).tobytes()).decode()}
