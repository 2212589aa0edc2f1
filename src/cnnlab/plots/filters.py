"""The pictures of `cnnlab filter`, `spectrum` and `conv-demo`: titled panels, a colour bar beside every panel
whose values matter. Each function returns a Figure; `save(fig, path, tight=False)` writes it.

Panels are placed by hand in inches, as constrained layout would cost another ~0.1 s; large images are shrunk
with OpenCV before plotting, faster than matplotlib's own way. OpenCV and `cnnlab.filters` are imported inside
the functions, so that `from cnnlab.plots import ...` stays light for commands that filter nothing.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.plots.base import image_axes, new_figure

DPI = 100
PANEL = 3.84  # inches: the longer side of an image panel; at 100 dpi the 384-pixel samples show 1:1
MAX_PIXELS = 384  # images are shrunk to at most this many pixels a side before plotting: no more fit
SIGNED_CMAP = "RdBu_r"  # blue below zero, white at zero, red above


class _Sheet:
    """A grid of equal slots; each holds an image panel with room for a title above, text below and a colour bar."""

    LEFT, GAP, BAR, BAR_TEXT, TITLE = 0.55, 0.1, 0.12, 0.6, 0.55  # inches

    def __init__(self, rows: int, cols: int, aspect: float, below: float = 0.3, panel: float = PANEL):
        self.image_w = panel if aspect <= 1 else panel / aspect
        self.image_h = self.image_w * aspect
        self.below, self.rows = below, rows
        self.slot_w = self.LEFT + self.image_w + self.GAP + self.BAR + self.BAR_TEXT
        self.slot_h = self.below + self.image_h + self.TITLE
        self.size = (cols * self.slot_w, rows * self.slot_h)
        self.figure = new_figure(*self.size, dpi=DPI)

    def _rect(self, x: float, y: float, w: float, h: float) -> list[float]:
        """Inches from the lower left -> the figure fractions matplotlib wants."""
        return [x / self.size[0], y / self.size[1], w / self.size[0], h / self.size[1]]

    def _corner(self, row: int, col: int) -> tuple[float, float]:
        """Lower left of the image panel in slot (row, col), rows counted from the top."""
        return col * self.slot_w + self.LEFT, (self.rows - 1 - row) * self.slot_h + self.below

    def axes(self, row: int, col: int):
        x, y = self._corner(row, col)
        return self.figure.add_axes(self._rect(x, y, self.image_w, self.image_h))

    def colorbar(self, image_artist, row: int, col: int) -> None:
        x, y = self._corner(row, col)
        cax = self.figure.add_axes(self._rect(x + self.image_w + self.GAP, y, self.BAR, self.image_h))
        self.figure.colorbar(image_artist, cax=cax).ax.tick_params(labelsize=8)

    def text(self, row: int, col: int, text: str, **kw) -> None:
        """Text starting at the top left of a slot's image panel, for explanations that are not pictures."""
        x, y = self._corner(row, col)
        self.figure.text(*self._rect(x - self.LEFT + 0.15, y + self.image_h, 0, 0)[:2], text, va="top", **kw)


def _shrink(array: np.ndarray) -> np.ndarray:
    import cv2

    scale = MAX_PIXELS / max(array.shape[:2])
    if scale >= 1:
        return array
    size = (round(array.shape[1] * scale), round(array.shape[0] * scale))
    return cv2.resize(np.asarray(array, np.float32), size, interpolation=cv2.INTER_AREA)


def _imshow(ax, array, title: str, **kw):
    image_axes(ax, title, fontsize=10)
    return ax.imshow(_shrink(array), **kw)


def _scaled(result: np.ndarray, mode: str, color: bool):
    """(array, imshow options, caption) showing a raw filter result the way `mode` says."""
    from cnnlab.filters.display import scale_for_display

    values, low, high, caption = scale_for_display(result, mode)
    if mode == "signed":
        caption += ", 0 = " + ("mid-grey" if color else "white")
    if color:  # RGB in 0..1 by the same rule; matplotlib draws no colour bar for RGB
        return (values - low) / (high - low), {}, caption
    return values, dict(cmap=SIGNED_CMAP if mode == "signed" else "gray", vmin=low, vmax=high), caption


def _matrix_caption(kernel: np.ndarray) -> str:
    from cnnlab.filters.kernels import format_matrix

    if max(kernel.shape) > 7:
        return f"{kernel.shape[0]}x{kernel.shape[1]} kernel"
    return format_matrix(kernel)


def filter_figure(
    image: np.ndarray,
    outputs: list[tuple[str, np.ndarray, np.ndarray]],
    display: str,
    blurred: np.ndarray | None = None,
):
    """The input (and the blurred input), then one panel per (label, kernel, result), three to a row."""
    from cnnlab.filters.display import display_mode

    color = image.ndim == 3
    panels = 1 + (blurred is not None) + len(outputs)
    cols = min(panels, 3)
    lines = max(len(_matrix_caption(kernel).splitlines()) for _, kernel, _ in outputs)
    sheet = _Sheet(math.ceil(panels / cols), cols, image.shape[0] / image.shape[1], below=0.25 + 0.16 * lines)
    pictures = [("input", image)] + ([("blurred first (gaussian 5x5)", blurred)] if blurred is not None else [])
    for index, (title, picture) in enumerate(pictures):
        if color:
            _imshow(sheet.axes(0, index), np.clip(picture / 255, 0, 1), title)
        else:
            _imshow(sheet.axes(0, index), picture, title, cmap="gray", vmin=0, vmax=255)
    for index, (label, kernel, result) in enumerate(outputs, start=len(pictures)):
        row, col = divmod(index, cols)
        ax = sheet.axes(row, col)
        array, options, caption = _scaled(result, display_mode(kernel, display), color)
        artist = _imshow(ax, array, f"{label}\n{caption}", **options)
        ax.set_xlabel(_matrix_caption(kernel), family="monospace", fontsize=8)
        if not color:
            sheet.colorbar(artist, row, col)
    sheet.figure.suptitle("filter2D: correlation, kernel not flipped", fontsize=9, x=0.01, ha="left", y=0.995)
    return sheet.figure


def _frequency_extent(height: int, width: int, unit: float = 1.0) -> tuple[float, float, float, float]:
    """imshow extent putting a centred spectrum's pixel (height//2, width//2) at frequency 0; `unit` per bin."""
    left, right = -(width // 2) - 0.5, width - width // 2 - 0.5
    top, bottom = -(height // 2) - 0.5, height - height // 2 - 0.5
    return left * unit, right * unit, bottom * unit, top * unit


def _frequency_axes(ax, title: str, xlabel: str = "horizontal frequency (cycles per image)", ylabel: str = "vertical"):
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def spectrum_figure(
    image: np.ndarray,
    log_magnitude: np.ndarray,
    peak: tuple[int, int],
    mask: np.ndarray | None = None,
    filtered: np.ndarray | None = None,
    keep: str = "",
    radius: float = 0,
):
    """Image and centred log spectrum, its strongest `peak` (u, v) ringed; with a mask, the mask and the result."""
    height, width = image.shape
    extent = _frequency_extent(height, width)  # in cycles per image
    panels = 2 if mask is None else 4
    sheet = _Sheet(1, panels, height / width, below=0.55)
    _imshow(sheet.axes(0, 0), image, f"image {width}x{height}", cmap="gray", vmin=0, vmax=255)
    ax = sheet.axes(0, 1)
    sheet.colorbar(ax.imshow(_shrink(log_magnitude), cmap="magma", extent=extent), 0, 1)
    u, v = peak
    ax.plot([u, -u], [v, -v], "o", markersize=14, markerfacecolor="none", markeredgecolor="cyan")
    _frequency_axes(ax, f"log(1 + |FFT|), centred; ringed: the\nstrongest besides the mean, \u00b1({u}, {v})")
    if mask is None:
        return sheet.figure
    ax = sheet.axes(0, 2)
    ax.imshow(_shrink(mask), cmap="gray", vmin=0, vmax=1, extent=extent)
    _frequency_axes(ax, f"mask: keep {keep} frequencies\nradius {radius:g} (white = kept)")
    if keep == "low":
        artist = _imshow(sheet.axes(0, 3), filtered, "low-pass result\n(blurred)", cmap="gray", vmin=0, vmax=255)
    else:
        top = float(np.abs(filtered).max()) or 1.0
        artist = _imshow(
            sheet.axes(0, 3), filtered, "high-pass result\n(edges; mean removed)", cmap=SIGNED_CMAP, vmin=-top, vmax=top
        )
    sheet.colorbar(artist, 0, 3)
    return sheet.figure


def response_figure(responses: list[tuple[str, np.ndarray, np.ndarray]]):
    """One panel per (label, kernel, |response|), frequencies in cycles per pixel (0.5 = finest pattern)."""
    cols = min(len(responses), 4)
    lines = max(len(_matrix_caption(kernel).splitlines()) for _, kernel, _ in responses)
    sheet = _Sheet(math.ceil(len(responses) / cols), cols, 1.0, below=0.6 + 0.16 * lines, panel=3.0)
    for index, (label, kernel, response) in enumerate(responses):
        row, col = divmod(index, cols)
        ax = sheet.axes(row, col)
        size = response.shape[0]
        artist = ax.imshow(response, cmap="magma", vmin=0, extent=_frequency_extent(size, size, 1 / size))
        sheet.colorbar(artist, row, col)
        centre = response[size // 2, size // 2]
        _frequency_axes(
            ax,
            f"{label}: |frequency response|\ncentre (flat areas) = {centre:.3g}",
            xlabel=f"horizontal (cycles/pixel)\n\n{_matrix_caption(kernel)}",
            ylabel="vertical",
        )
        ax.xaxis.label.set_family("monospace")
    return sheet.figure


def _annotate(ax, matrix: np.ndarray, top: float) -> None:
    """Write each weight on its cell, dark text on light cells, light on dark."""
    for (y, x), value in np.ndenumerate(matrix):
        ax.text(
            x,
            y,
            f"{value + 0.0:g}",
            ha="center",
            va="center",
            fontsize=8,
            color="black" if value > 0.2 * top else "white",
        )


def conv_demo_figure(result: dict[str, np.ndarray], explanation: str):
    """Rows: input and filters, convolution, ReLU, max-pooling; one column per filter, shared scale per row."""
    filters = result["filters"]
    height, width = result["input"].shape
    sheet = _Sheet(4, len(filters) + 1, height / width, panel=3.0)
    _imshow(sheet.axes(0, 0), result["input"], f"input {width}x{height}, grey 0..1", cmap="gray", vmin=0, vmax=1)
    top = float(np.abs(filters).max()) or 1.0
    for index, kernel in enumerate(filters, start=1):
        ax = sheet.axes(0, index)
        artist = _imshow(
            ax, kernel, f"filter {index} ({kernel.shape[0]}x{kernel.shape[1]})", cmap="gray", vmin=-top, vmax=top
        )
        if kernel.size <= 64:
            _annotate(ax, kernel, top)
    sheet.colorbar(artist, 0, len(filters))
    stages = [("conv", "convolution", True), ("relu", "ReLU", False), ("pooled", "2x2 max-pool", False)]
    for row, (key, name, signed) in enumerate(stages, start=1):
        maps = result[key]
        top = float(np.abs(maps).max()) or 1.0
        for index, feature_map in enumerate(maps, start=1):
            title = f"{name}, filter {index}\n{feature_map.shape[1]}x{feature_map.shape[0]}"
            artist = _imshow(
                sheet.axes(row, index), feature_map, title, cmap="gray", vmin=-top if signed else 0, vmax=top
            )
        sheet.colorbar(artist, row, len(filters))
    notes = (
        f"{explanation}\n\nconvolution: grey = 0\nReLU: max(0, x), negatives become 0\n"
        "max-pool 2x2, stride 2:\nthe largest of each 2x2 block"
    )
    sheet.text(1, 0, notes, family="monospace", fontsize=9)
    return sheet.figure
