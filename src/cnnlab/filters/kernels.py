"""Named kernels, and reading a kernel from a name, an inline matrix or a file.

Weights are written the way OpenCV's `filter2D` (and `nn.Conv2d`) use them: as a *correlation*, the kernel laid
over the image without flipping. So `sobel-x` is positive where the image gets brighter to the right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class NamedKernel:
    matrix: np.ndarray
    description: str


def _kernel(rows, description: str, scale: float = 1.0) -> NamedKernel:
    return NamedKernel(np.array(rows, dtype=np.float64) * scale, description)


_BINOMIAL_5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])

KERNELS: dict[str, NamedKernel] = {
    "sobel-x": _kernel(
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "vertical edges: positive where the image gets brighter to the right"
    ),
    "sobel-y": _kernel(
        [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "horizontal edges: positive where the image gets brighter downwards"
    ),
    "laplacian": _kernel(
        [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
        "second derivative: edges in every direction, zero on flat areas and even ramps",
    ),
    "high-pass": _kernel(
        [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
        "the Udacity CNN lesson's custom high-pass (minus the Laplacian): keeps only changes",
    ),
    "outline": _kernel(
        [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "high-pass over all 8 neighbours: stronger, diagonal-aware outlines"
    ),
    "box": _kernel(np.ones((3, 3)), "blur: the mean of the 3x3 neighbourhood (a low-pass)", scale=1 / 9),
    "gaussian": _kernel(_BINOMIAL_5, "smooth 5x5 blur, weights from (1 4 6 4 1)/16 (a low-pass)", scale=1 / 256),
    "sharpen": _kernel(
        [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], "the image plus its high-pass: crisper edges, same brightness"
    ),
    "emboss": _kernel(
        [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], "the image plus a diagonal derivative: a raised-relief look"
    ),
}


def check_kernel(data) -> np.ndarray:
    """Any nested list/array -> a float 2-D matrix, or a CnnlabError saying what is wrong with it."""
    try:
        matrix = np.array(data, dtype=np.float64)
    except (ValueError, TypeError):
        raise CnnlabError(
            "kernel must be a 2-D matrix of numbers with rows of equal length, e.g. [[0,-1,0],[-1,4,-1],[0,-1,0]]"
        ) from None
    if matrix.size == 0:
        raise CnnlabError("kernel is empty; give at least one weight, e.g. [[1]]")
    if matrix.ndim != 2:
        raise CnnlabError(
            f"kernel must be a 2-D matrix (a list of rows), got {matrix.ndim} dimension(s); "
            "e.g. [[-1,0,1]] for a single row"
        )
    if not np.isfinite(matrix).all():
        raise CnnlabError("kernel contains NaN or infinity; use finite numbers")
    return matrix


def _read_matrix_text(text: str) -> list[list[float]]:
    """Rows on lines, numbers separated by commas and/or spaces; blank lines and `#` comments are skipped."""
    rows = []
    for line in text.splitlines():
        line = line.split("#")[0].replace(",", " ").strip()
        if line:
            try:
                rows.append([float(word) for word in line.split()])
            except ValueError:
                raise CnnlabError(f"kernel row {line!r} is not a row of numbers") from None
    return rows


def _read_kernel_file(path: Path):
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CnnlabError(f"cannot read kernel file {path}: {error}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise CnnlabError(
                f"kernel file {path} is not valid JSON ({error}); "
                "write a list of rows like [[0,-1,0],[-1,4,-1],[0,-1,0]]"
            ) from None
    return _read_matrix_text(text)


def parse_kernel(text: str) -> np.ndarray:
    """A kernel from a library name (`sobel-x`), an inline JSON matrix (`[[0,-1,0],[-1,4,-1],[0,-1,0]]`),
    or a file: JSON (`.json`, or text starting with `[`), else one row per line, numbers split by spaces/commas."""
    text = text.strip()
    if text in KERNELS:
        return KERNELS[text].matrix.copy()
    if text.startswith("["):
        try:
            return check_kernel(json.loads(text))
        except json.JSONDecodeError:
            raise CnnlabError(
                f"inline kernel {text!r} is not a valid matrix; write it like "
                "[[0,-1,0],[-1,4,-1],[0,-1,0]] (quote it in the shell)"
            ) from None
    path = Path(text)
    if path.is_file():
        return check_kernel(_read_kernel_file(path))
    raise CnnlabError(
        f"unknown kernel {text!r}: not a name from `cnnlab kernels` ({', '.join(KERNELS)}), "
        "not an inline matrix like [[0,-1,0],[-1,4,-1],[0,-1,0]], and no such file"
    )


def kernel_label(text: str, matrix: np.ndarray) -> str:
    """A short name for titles: the library name, the file name, or `custom HxW`."""
    text = text.strip()
    if text in KERNELS:
        return text
    if not text.startswith("[") and Path(text).is_file():
        return Path(text).name
    return f"custom {matrix.shape[0]}x{matrix.shape[1]}"


def _denominator(matrix: np.ndarray, largest: int = 1024) -> int:
    """The smallest d with matrix * d all whole numbers (9 for the box blur), or 1 if there is none up to `largest`."""
    candidates = np.arange(1, largest + 1)
    scaled = candidates[:, None] * matrix.ravel()[None, :]  # one row per candidate d
    whole = np.all(np.abs(scaled - np.round(scaled)) < 1e-6, axis=1)
    return int(candidates[whole][0]) if whole.any() else 1


def format_matrix(matrix: np.ndarray) -> str:
    """The matrix as aligned text rows, compact numbers; `1/9 *` on a first line when that makes them whole."""
    denominator = _denominator(matrix)
    cells = [[f"{value + 0.0:.3g}" for value in row] for row in matrix * denominator]  # + 0.0 turns -0 into 0
    width = max(len(cell) for row in cells for cell in row)
    text = "\n".join(" ".join(cell.rjust(width) for cell in row) for row in cells)
    return text if denominator == 1 else f"1/{denominator} *\n{text}"
