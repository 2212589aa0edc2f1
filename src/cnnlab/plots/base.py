"""What every cnnlab figure shares: a fresh matplotlib Figure, the one way to save it, and image-panel helpers.

Figures are `matplotlib.figure.Figure` objects drawn by Agg, never created through pyplot: they leave no global
state behind (nothing to close, no backend switched), and each knows how to show itself as a PNG, so a fresh
Jupyter kernel displays a returned figure inline with no `%matplotlib` magic.
Matplotlib is imported inside the functions, so commands that draw nothing do not pay its ~0.3 s.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np

from cnnlab.files import atomic_path
from cnnlab.images import write_png

DPI = 110  # pixels per inch of the saved PNG


def new_figure(width: float, height: float, dpi: float = DPI, **kw):
    """An empty Figure of width x height inches; `kw` go to Figure, e.g. layout="constrained"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = _shown_figure_class()(figsize=(width, height), dpi=dpi, **kw)
    FigureCanvasAgg(figure)  # attaches itself: Agg draws this figure whatever backend pyplot uses
    return figure


@functools.cache
def _shown_figure_class():
    """A Figure that Jupyter shows as a picture with no `%matplotlib inline` (without it IPython knows no way to
    draw a Figure that pyplot did not make, and prints `<Figure size ...>`)."""
    from matplotlib.figure import Figure

    class ShownFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi="figure", bbox_inches="tight")
            return buffer.getvalue()

    return ShownFigure


def save(fig, path, tight: bool = True) -> Path:
    """Write `fig` as a PNG at its own dpi, atomically; `tight` crops the margins to what is drawn.

    Only matplotlib's own writer can crop; at compression level 1 it is ~15 ms faster per figure than at its
    default. The figures placed by hand in inches (`cnnlab.plots.filters`) need no crop (which would cost
    another ~70 ms): they are saved as the canvas's pixels, which OpenCV encodes ~15 ms faster still.
    """
    path = Path(path)
    if not tight:
        fig.canvas.draw()
        write_png(path, np.asarray(fig.canvas.buffer_rgba()))
        return path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi="figure", bbox_inches="tight", pil_kwargs={"compress_level": 1})
    return path


def to_display(image) -> tuple[np.ndarray, str | None]:
    """[C, H, W] uint8 -> something imshow draws, with the colour map to use."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image, ("gray" if image.ndim == 2 else None)


def image_axes(ax, title: str = "", fontsize: float = 9) -> None:
    """Make `ax` an image panel: a title above, no ticks (pixel numbers say nothing here)."""
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])


def short(name: str, width: int = 14) -> str:
    """A class name cut to fit under a thumbnail: 'n01440764_tench' -> 'n01440764_ten…'."""
    return name if len(name) <= width else name[: width - 1] + "…"
