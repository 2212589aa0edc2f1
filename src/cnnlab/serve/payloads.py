"""What travels between the server and the page: images as data URLs, feature maps as bytes, inputs decoded once."""

from __future__ import annotations

import base64
import ctypes
import io
import threading
from contextlib import contextmanager

import numpy as np
from pydantic import BaseModel, Field

from cnnlab.errors import CnnlabError
from cnnlab.images import MAX_PIXELS, open_image, png_bytes
from cnnlab.plots.base import to_display

MAX_UPLOAD_BYTES = 20_000_000  # a 50-MP JPEG is ~15 MB; a request larger than this is refused before decoding
KEPT_SIDE = 2048  # a decoded upload is shrunk to this at once: no panel shows more, no model takes more
DECODING_PIXELS = MAX_PIXELS  # pixels being decoded at once, all requests together (~4 bytes each, twice)
ORIGINAL_SIZE = "cnnlab original size"  # in a decoded image's .info: its width and height as uploaded


class Refusal(BaseModel):
    """Every 4xx answer: one line saying what is wrong and what to do."""

    error: str = Field(description="what was refused and why, in one line")


# The answers every endpoint may give besides its own: in the OpenAPI description, so that clients know them
REFUSALS = {
    400: {"model": Refusal, "description": "bad input: the line says which and what to do"},
    404: {"model": Refusal, "description": "a run, picture or data set named that is not there"},
    413: {
        "model": Refusal,
        "description": f"the request is over the {MAX_UPLOAD_BYTES * 4 // 3 // 10**6 + 1} MB "
        "limit (an image is at most 20 MB)",
    },
    422: {"model": Refusal, "description": "a field missing, or of the wrong type"},
}

# A black 28x28 PNG: the example of every image field, so that generated requests reach the models too
EXAMPLE_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAEElEQVR42mNgGAWjYBQQAwADLAAB1"
    "wvpfAAAAABJRU5ErkJggg=="
)
# What the schema says of an image field. Checked by decode_image (not by pydantic), whose 400s say what is wrong
# in words ("the image is empty") rather than as a pattern
DATA_URL = {
    "format": "data-url",
    "pattern": r"^data:[a-z/+.-]*;base64,[A-Za-z0-9+/]+={0,2}$",
    "minLength": len("data:;base64,") + 1,
}


def bounds(low: int, high: int | None = None) -> dict:
    """A number's range in the schema (json_schema_extra), where the code checks it with its own one-line 400."""
    return {"minimum": low} | ({} if high is None else {"maximum": high})


class ImageInput(BaseModel):
    """An image as the page sends it: a data URL (`data:image/png;base64,...`) of any format PIL reads."""

    image: str = Field(
        description="data URL of a PNG, JPEG, BMP, GIF, TIFF or WebP image, at most 20 MB",
        examples=[EXAMPLE_IMAGE],
        json_schema_extra=DATA_URL,
    )


class PixelBudget:
    """At most `limit` pixels being decoded at once by all requests together: a request waits for its turn (one
    image larger than the whole budget goes alone). Decoding is where an upload of a few hundred KB becomes hundreds
    of MB; after it the image is shrunk to KEPT_SIDE."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._turn = threading.Condition()

    @contextmanager
    def hold(self, pixels: int):
        with self._turn:
            self._turn.wait_for(lambda: self.used == 0 or self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            with self._turn:
                self.used -= pixels
                self._turn.notify_all()


DECODING = PixelBudget(DECODING_PIXELS)


def unmap_large_blocks(threshold: int = 4 * 2**20) -> None:
    """glibc only: every allocation of `threshold` bytes or more (a decoded image's blocks) mapped on its own, so
    that freeing it returns it to the system. By default the threshold grows to 32 MB as blocks are freed, and
    what stays under it is kept in per-thread arenas: 20 decodes of a 64-Mpx PNG, 10 threads at a time, one
    decode at a time, left a peak of 2.5 GB resident instead of 0.8 GB."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, threshold)  # -3: M_MMAP_THRESHOLD (also stops its growth)
    except (OSError, AttributeError):  # not glibc: its allocator does as it does
        pass


def decode_image(data_url: str, name: str = "upload"):
    """A data URL -> PIL image, with the size limits of `cnnlab.images.open_image`; shrunk (aspect kept) so that
    its longer side is at most KEPT_SIDE; its size as uploaded is in `.info[ORIGINAL_SIZE]`."""
    head, _, body = data_url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise CnnlabError(f"{name}: not a data URL (expected data:image/...;base64,...)")
    if len(body) * 3 // 4 > MAX_UPLOAD_BYTES:
        raise CnnlabError(
            f"{name}: {len(body) * 3 // 4 / 1e6:.0f} MB is over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB upload limit"
        )
    try:
        data = base64.b64decode(body, validate=True)
    except ValueError:
        raise CnnlabError(f"{name}: the data URL is not valid base64") from None
    if not data:
        raise CnnlabError(f"{name}: the image is empty")
    with DECODING.hold(header_pixels(data)):
        image = open_image(data, name)
        original = image.size
        if max(image.size) > KEPT_SIDE:
            image.thumbnail((KEPT_SIDE, KEPT_SIDE))  # reduce() by whole factors first, then a fine resize
        image.info[ORIGINAL_SIZE] = original
        return image


def header_pixels(data: bytes) -> int:
    """Width x height from the image's header (nothing decoded); 0 when it is not an image (open_image says why)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size[0] * image.size[1]
    except (OSError, ValueError, Image.DecompressionBombError):  # open_image refuses it, in its one line
        return 0


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
