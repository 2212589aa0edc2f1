"""Endpoints of the lessons panels: the kernel playground and the convolution arithmetic, over `cnnlab.filters`.

Kernel playground: a picture is sent once (`POST /pictures`) and kept under a hash of its content in a small LRU,
so a kernel edit sends only the picture's id and the kernel: one filter2D and one PNG, a few milliseconds.
Built-in samples need no upload: their id is `sample:NAME`, as on the command line. An id is only ever looked up,
never opened as a path, so no request can make the server read a file.

Convolution arithmetic: the output size and its explanation come from here (the library's `output_size` and
`explain_sizes`, with dilation added); the numbers of the animation from PyTorch's own convolution.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from cnnlab.errors import CnnlabError, whole
from cnnlab.filters import (
    BORDERS,
    DISPLAYS,
    KERNELS,
    LESSON_FILTERS,
    SAMPLES,
    apply_kernel,
    blur,
    check_kernel,
    conv_demo,
    display_mode,
    explain_sizes,
    format_matrix,
    kernel_label,
    kernel_response,
    output_size,
    sample_image,
    spectrum,
    strongest_frequency,
    to_uint8,
)
from cnnlab.filters.display import scale_for_display
from cnnlab.filters.filtering import check_centred
from cnnlab.filters.samples import SAMPLE_PREFIX, describe
from cnnlab.images import to_mode
from cnnlab.serve.payloads import ORIGINAL_SIZE, ImageInput, bounds, decode_image, png_data_url
from cnnlab.serve.store import NotFound

router = APIRouter(tags=["lessons"])

UPLOAD_PREFIX = "upload:"
KEPT_PICTURES = 8  # uploads held at once, the most recently used; each at most 1024 x 1024 x 3 bytes
PICTURE_SIDE = 1024  # uploads are shrunk to this: the page shows no more, and an edit stays fast
KERNEL_SIDE = 15  # the largest playground kernel; its frequency response is drawn on a 64 x 64 grid
RESPONSE_SIZE = 64  # as `cnnlab spectrum --kernel`
PICTURE_ID = "sample:NAME (see GET /kernels), or the id POST /pictures returned"

Cell = float | str | None  # a grid cell as typed: a number, a fraction such as "1/9", or empty


# --- pictures: samples by name, uploads by content hash ------------------------------------------------------------


class Pictures:
    """The last few uploaded pictures (RGB uint8, read-only), by a hash of their data URL; samples by name."""

    def __init__(self, keep: int = KEPT_PICTURES):
        self._kept: OrderedDict[str, tuple[np.ndarray, tuple[int, int]]] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def add(self, data_url: str) -> tuple[str, np.ndarray, tuple[int, int]]:
        """(id, picture, original width and height): the same picture sent twice is decoded once."""
        picture_id = UPLOAD_PREFIX + hashlib.sha256(data_url.encode()).hexdigest()[:16]
        with self._lock:
            if picture_id in self._kept:
                return (picture_id, *self._use(picture_id))
        image = decode_image(data_url, "picture")  # outside the lock: other requests go on meanwhile
        kept = shrunk_rgb(image), image.info[ORIGINAL_SIZE]
        with self._lock:
            self._kept[picture_id] = kept
            return (picture_id, *self._use(picture_id))

    def get(self, picture_id: str) -> np.ndarray:
        if picture_id.startswith(SAMPLE_PREFIX):
            return sample_picture(picture_id[len(SAMPLE_PREFIX) :])
        with self._lock:
            if picture_id in self._kept:
                return self._use(picture_id)[0]
        raise NotFound(
            f"picture {picture_id!r} is not held by the server (it keeps the last {self._keep} uploads); "
            "upload it again, or use a sample such as sample:city"
        )

    def _use(self, picture_id: str) -> tuple[np.ndarray, tuple[int, int]]:
        self._kept.move_to_end(picture_id)  # the least recently used are dropped first
        while len(self._kept) > self._keep:
            self._kept.popitem(last=False)
        return self._kept[picture_id]


PICTURES = Pictures()


def shrunk_rgb(image) -> np.ndarray:
    """A PIL image of any mode -> RGB uint8, its longer side at most PICTURE_SIDE (aspect kept)."""
    image = to_mode(image, 3)
    image.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
    return read_only(np.asarray(image))


@functools.lru_cache(maxsize=len(SAMPLES))
def sample_picture(name: str) -> np.ndarray:
    return read_only(sample_image(name))  # an unknown name raises, and is not cached


def read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array)  # our own copy: cached pictures are shared by every request
    array.setflags(write=False)
    return array


def grey(picture: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)  # as `load_picture` turns a sample grey


# --- kernels -----------------------------------------------------------------------------------------------------


def read_kernel(kernel: str | list[list[Cell]]) -> tuple[str, np.ndarray]:
    """(label, matrix) from a library name, or rows of cells as typed in the page's grid; each bad cell is named.

    Names only: a string is never read as a file, unlike `parse_kernel` on the command line."""
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise CnnlabError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}, or send rows of numbers")
        return kernel, KERNELS[kernel].matrix
    lengths = [len(row) for row in kernel]
    if len(set(lengths)) > 1:
        raise CnnlabError(f"kernel rows have {', '.join(map(str, lengths))} numbers; every row needs the same count")
    matrix = check_kernel([[cell_value(cell, r, c) for c, cell in enumerate(row)] for r, row in enumerate(kernel)])
    if max(matrix.shape) > KERNEL_SIDE:
        raise CnnlabError(
            f"kernel is {matrix.shape[0]}x{matrix.shape[1]}; the playground takes kernels up to "
            f"{KERNEL_SIDE}x{KERNEL_SIDE}"
        )
    check_centred(matrix)
    return kernel_label(str(matrix.tolist()), matrix), matrix  # an inline matrix: `custom HxW`


def cell_value(cell: Cell, row: int, column: int) -> float:
    """One grid cell -> a finite number; the error names the cell (counted from 1) and what is in it."""
    where = f"kernel row {row + 1}, column {column + 1}"
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        raise CnnlabError(f"{where} is empty; type a number")
    try:
        value = fraction(cell) if isinstance(cell, str) else float(cell)
    except (ValueError, ZeroDivisionError):
        raise CnnlabError(f"{where}: {cell!r} is not a number; type one like -1, 0.5 or 1/9") from None
    if not math.isfinite(value):
        raise CnnlabError(f"{where} is {cell!r}; a kernel needs finite numbers")
    return value


def fraction(text: str) -> float:
    """'0.5' -> 0.5, '1/9' -> 0.111...: the grid shows blurs as fractions, the way `cnnlab kernels` prints them."""
    top, slash, bottom = text.strip().partition("/")
    return float(top) / float(bottom) if slash else float(top)


def kernel_cells(matrix: np.ndarray) -> list[list[str]]:
    """The kernel as the grid shows it: format_matrix's compact numbers, each over its common denominator (4/256)."""
    lines = format_matrix(matrix).splitlines()
    over = "/" + lines.pop(0).removeprefix("1/").removesuffix(" *") if lines[0].endswith("*") else ""
    return [[cell + over if over and cell != "0" else cell for cell in line.split()] for line in lines]


@functools.cache
def magma_colours() -> np.ndarray:
    """256 RGB colours of matplotlib's magma, the colour map of the CLI's spectrum and response figures."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def magma_picture(values: np.ndarray) -> np.ndarray:
    """Non-negative values -> RGB uint8: 0 is black, the largest value the palest colour."""
    return magma_colours()[to_uint8(values, "abs")]


@router.get("/kernels")
def kernel_library() -> dict:
    """The named kernels (weights, what they do, the grid's cells), the sample pictures, border and display modes."""
    kernels = [
        {
            "name": name,
            "description": kernel.description,
            "matrix": kernel.matrix.tolist(),
            "cells": kernel_cells(kernel.matrix),
        }
        for name, kernel in KERNELS.items()
    ]
    samples = [{"id": SAMPLE_PREFIX + name, "name": name, "description": describe(name)} for name in SAMPLES]
    return {"kernels": kernels, "samples": samples, "borders": list(BORDERS), "displays": list(DISPLAYS)}


@router.post("/pictures")
def upload_picture(body: ImageInput) -> dict:
    """Keep an uploaded picture for the kernel playground and the conv layer (longer side shrunk to 1024 at most);
    returns its id. The server keeps the last few; the same picture sent again gets the same id."""
    picture_id, picture, (width, height) = PICTURES.add(body.image)
    return {"id": picture_id, "width": picture.shape[1], "height": picture.shape[0], "original": [width, height]}


@router.get("/kernels/spectrum")
def picture_spectrum(
    image: str = Query("sample:city", description=PICTURE_ID),
    color: bool = Query(False, description="the picture in colour rather than grey"),
) -> dict:
    """The picture as the kernels see it, and its centred Fourier spectrum, log(1 + |F|) in magma, with the
    strongest frequency besides the mean (cycles per image, across and down)."""
    picture = PICTURES.get(image)
    grey_picture = grey(picture)
    return {
        "picture": png_data_url(picture if color else grey_picture),
        "spectrum": png_data_url(magma_picture(spectrum(grey_picture))),
        "strongest": list(strongest_frequency(grey_picture)),
        "width": picture.shape[1],
        "height": picture.shape[0],
    }


class FilterRequest(BaseModel):
    """One kernel applied to one picture: what the page sends on every kernel edit."""

    image: str = Field("sample:city", description=PICTURE_ID)
    kernel: str | list[list[Cell]] = Field(
        description="a name from GET /kernels, or rows of numbers (fractions such as 1/9 too), odd sizes up to 15x15",
        examples=["sobel-x", [["0", "-1", "0"], ["-1", "4", "-1"], ["0", "-1", "0"]]],
    )
    display: Literal[DISPLAYS] = Field(
        "auto", description="how the result is scaled to black..white, as in `cnnlab filter --display`"
    )
    border: Literal[tuple(BORDERS)] = Field("reflect-101", description="how pixels beyond the edge are made up")
    color: bool = Field(False, description="filter each colour channel rather than the grey picture")
    blur_first: bool = Field(False, description="smooth with the 5x5 gaussian first")


@router.post("/kernels/filter")
def filter_picture(body: FilterRequest) -> dict:
    """The picture filtered with the kernel (OpenCV's filter2D, a correlation; shown as `cnnlab filter` writes it,
    with what black and white stand for) and the kernel's frequency response."""
    label, kernel = read_kernel(body.kernel)
    picture = PICTURES.get(body.image)
    source = picture if body.color else grey(picture)
    result = apply_kernel(blur(source, body.border) if body.blur_first else source, kernel, body.border)
    if not np.isfinite(result).all():
        raise CnnlabError(
            f"the kernel's weights (up to {np.abs(kernel).max():.3g}) are too large: the filtered "
            "picture overflows float32 (beyond ±3.4e38); use smaller weights"
        )
    mode = display_mode(kernel, body.display)
    _, black, white, caption = scale_for_display(result, mode)
    response = kernel_response(kernel, RESPONSE_SIZE)
    return {
        "label": label,
        "filtered": png_data_url(to_uint8(result, mode)),
        "display": mode,
        "caption": caption,
        "why": display_reason(kernel, body.display, mode),
        "black": black,
        "white": white,
        "low": float(result.min()),
        "high": float(result.max()),
        "response": png_data_url(magma_picture(response)),
        "gain": float(response[RESPONSE_SIZE // 2, RESPONSE_SIZE // 2]),
        "response_max": float(response.max()),
    }


def display_reason(kernel: np.ndarray, display: str, mode: str) -> str:
    """Why `auto` chose `mode`, in words for the page; empty when the display was chosen by hand."""
    if display != "auto":
        return ""
    total = f"{float(kernel.sum()):.4g}"
    if mode == "abs":
        return "auto: the weights sum to 0 (an edge detector), so the size of the response is shown"
    if mode == "clip":
        return f"auto: the weights sum to {total} > 0 (as a blur's do), so the output is shown as pixels, clipped"
    return (
        f"auto: the weights sum to {total} < 0, so most of the output is negative: shown signed, mid-grey = 0, "
        "darker below 0, brighter above"
    )


# --- convolution arithmetic --------------------------------------------------------------------------------------


def dilated_span(kernel: int, dilation: int) -> int:
    """Input pixels a dilated kernel covers: its taps sit `dilation` apart, d*(k - 1) + 1 (nn.Conv2d's rule).
    The library's output_size then holds with this span as F."""
    return dilation * (kernel - 1) + 1


def size_explanation(size: int, kernel: int, stride: int, padding: int, dilation: int) -> list[str]:
    """Plain sentences on how the window fits: whether it fits at all, what stride leaves over, what padding adds."""
    span, padded = dilated_span(kernel, dilation), size + 2 * padding
    window = f"{span}x{span} window" + (
        f" (the {kernel}x{kernel} kernel dilated by {dilation})" if dilation > 1 else ""
    )
    if span > padded:
        need = math.ceil((span - size) / 2)
        return [
            f"The {window} is larger than the padded input ({size} + 2x{padding} = {padded}): it fits nowhere, "
            f"so there is no output. Use a smaller kernel or dilation, or a padding of at least {need}."
        ]
    out = output_size(size, span, stride, padding)
    lines = [
        f"The {window} moves {stride} pixel{'s' if stride > 1 else ''} at a time over the {padded}x{padded} "
        f"padded input and fits {out} times along each side: a {out}x{out} output."
    ]
    if stride > span:
        gap = stride - span
        rows = f"{gap} row{'s' if gap > 1 else ''} and column{'s' if gap > 1 else ''}"
        lines.append(
            f"Stride {stride} is longer than the {span}-pixel window: between one window and the next, "
            f"{rows} are skipped. Those pixels (hatched) are never multiplied: they cannot change the output."
        )
    leftover = (padded - span) % stride
    if leftover:
        plural = "s" if leftover > 1 else ""
        lines.append(
            f"Stride {stride} does not land evenly: after the last window, {leftover} more row{plural} and "
            f"column{plural} at the bottom and right of the padded input are too few for another step, so "
            "they are never covered and are dropped (the formula rounds down, as nn.Conv2d does)."
        )
    if padding >= span:
        lines.append(
            f"Padding {padding} is as wide as the window or wider: the corner windows see only the padding's "
            "zeros, so their outputs are 0."
        )
    return lines


def example_numbers(size: int, kernel: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small whole numbers to multiply in one's head: input 0..9, weights -1..1."""
    generator = np.random.default_rng(seed)
    return generator.integers(0, 10, (size, size)), generator.integers(-1, 2, (kernel, kernel))


def convolve(numbers: np.ndarray, weights: np.ndarray, stride: int, padding: int, dilation: int) -> np.ndarray:
    """What nn.Conv2d (one channel, no bias) computes from these numbers: the values the animation writes out."""
    import torch

    result = torch.nn.functional.conv2d(
        torch.tensor(numbers, dtype=torch.float64)[None, None],
        torch.tensor(weights, dtype=torch.float64)[None, None],
        stride=stride,
        padding=padding,
        dilation=dilation,
    )
    return result[0, 0].numpy()


@router.get("/convolution/sizes")
def convolution_sizes(
    size: int = Query(7, description="input width and height, 1 to 16", json_schema_extra=bounds(1, 16)),
    kernel: int = Query(3, description="kernel width and height, 1 to 7", json_schema_extra=bounds(1, 7)),
    stride: int = Query(1, description="1 to 6", json_schema_extra=bounds(1, 6)),
    padding: int = Query(0, description="0 to 6", json_schema_extra=bounds(0, 6)),
    dilation: int = Query(1, description="spacing of the kernel's taps, 1 to 4", json_schema_extra=bounds(1, 4)),
    seed: int = Query(0, description="picks the example numbers", json_schema_extra=bounds(0, 2**31)),
) -> dict:
    """The output size from (W - F + 2P) / S + 1 with F the dilated kernel's span, in plain words when the
    combination does not fit; and example numbers with the output nn.Conv2d computes from them."""
    for name, value, low, high in (
        ("size", size, 1, 16),
        ("kernel", kernel, 1, 7),
        ("stride", stride, 1, 6),
        ("padding", padding, 0, 6),
        ("dilation", dilation, 1, 4),
        ("seed", seed, 0, 2**31),
    ):
        whole(value, name, low, high)  # grids a page can show, numbers one can follow
    span = dilated_span(kernel, dilation)
    fits = span <= size + 2 * padding
    numbers, weights = example_numbers(size, kernel, seed)
    formula = (
        [f"dilated kernel: F = d*(k - 1) + 1 = {dilation}*({kernel} - 1) + 1 = {span}"] if dilation > 1 else []
    ) + explain_sizes((size, size), (span, span), stride, padding).splitlines()
    return {
        "size": size,
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "span": span,
        "output": output_size(size, span, stride, padding) if fits else 0,
        "fits": fits,
        "formula": formula,
        "explanation": size_explanation(size, kernel, stride, padding, dilation),
        "input": numbers.tolist(),
        "weights": weights.tolist(),
        "result": convolve(numbers, weights, stride, padding, dilation).tolist() if fits else [],
    }


@router.get("/convolution/layer")
def conv_relu_pool(
    image: str = Query("sample:city", description=PICTURE_ID),
    stride: int = Query(1, description="at least 1", json_schema_extra=bounds(1)),
    padding: int = Query(0, description="zeros added on each side", json_schema_extra=bounds(0)),
) -> dict:
    """The lesson's four 4x4 edge filters in nn.Conv2d, then ReLU, then 2x2 max-pooling, on the grey picture:
    each stage's four maps on one shared scale (convolution: mid-grey is 0; ReLU and pooling: black is 0)."""
    picture = grey(PICTURES.get(image))
    result = conv_demo(picture, LESSON_FILTERS, stride, padding)  # it checks stride and padding
    stages = [("conv", "convolution", "signed"), ("relu", "ReLU", "abs"), ("pooled", "2x2 max-pool", "abs")]
    return {
        "input": png_data_url(picture),
        "filters": result["filters"].tolist(),
        "explanation": explain_sizes(picture.shape, LESSON_FILTERS.shape[1:], stride, padding).splitlines(),
        "stages": [stage_maps(result[key], title, mode) for key, title, mode in stages],
    }


def stage_maps(maps: np.ndarray, title: str, mode: str) -> dict:
    """One stage's maps as PNGs on one shared scale (to_uint8 scales the whole stack), and what black/white mean."""
    _, black, white, _ = scale_for_display(maps, mode)
    pictures = to_uint8(maps, mode)
    return {
        "title": title,
        "width": maps.shape[2],
        "height": maps.shape[1],
        "black": black,
        "white": white,
        "maps": [png_data_url(picture) for picture in pictures],
    }


# --- the lesson notebooks the panels link to -----------------------------------------------------------------------

LESSON_FOLDER = Path(__file__).resolve().parents[1] / "lessons"  # cnnlab/lessons/NN-name.ipynb, in the package


@router.get("/lessons/{name}")
def lesson_notebook(name: str) -> FileResponse:
    """A lesson notebook (such as 06-conv-layer.ipynb) to download and open in Jupyter; `cnnlab lessons --copy DIR`
    copies them all. Looked up by name among the packaged notebooks: a name is never opened as a path."""
    notebooks = {path.name: path for path in LESSON_FOLDER.glob("*.ipynb")} if LESSON_FOLDER.is_dir() else {}
    if name not in notebooks:
        raise NotFound(
            f"lesson notebook {name!r} is not among the {len(notebooks)} installed with cnnlab; "
            "`cnnlab lessons` lists them"
        )
    return FileResponse(notebooks[name], media_type="application/x-ipynb+json", filename=name)
