"""Making a raw filter result visible: its values can be negative or far above 255, so pick a scale and say which."""

from __future__ import annotations

import numpy as np

DISPLAYS = ("auto", "abs", "clip", "signed")


def display_mode(kernel: np.ndarray, display: str) -> str:
    """`auto`: |response| for kernels whose weights sum to 0 (edge detectors), clip to 0..255 for a positive sum
    (blurs, sharpening), signed for a negative sum (its output is mostly below 0: clipped, it would be all black)."""
    if display != "auto":
        return display
    total = float(np.sum(kernel))
    return "abs" if abs(total) < 1e-6 else "clip" if total > 0 else "signed"


def scale_for_display(result: np.ndarray, mode: str) -> tuple[np.ndarray, float, float, str]:
    """(values, low, high, caption): draw `values` with `low` as black and `high` as white."""
    top = float(np.abs(result).max()) or 1.0
    if mode == "abs":
        return np.abs(result), 0.0, top, "|response|"
    if mode == "clip":
        return np.clip(result, 0, 255), 0.0, 255.0, "clipped to 0..255"
    return result, -top, top, "signed"


def to_uint8(result: np.ndarray, mode: str) -> np.ndarray:
    """The result as an 8-bit picture, scaled the way `mode` says."""
    values, low, high, _ = scale_for_display(result, mode)
    return np.round((values - low) * (255 / (high - low))).astype(np.uint8)
