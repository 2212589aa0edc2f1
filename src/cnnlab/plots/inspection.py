"""The inspection pictures: heat maps over images, feature maps, filters, top patches, optimized images.

Every panel is titled; heat maps sit over the image with a colour bar. Pixels are drawn as squares (nearest
neighbour): these images are small, and smoothing would invent detail that the model never saw. Each function
returns a Figure; `save(fig, path)` writes it.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.plots.base import image_axes, new_figure, short, to_display

PANEL = 2.3  # inches per image panel


def _figure(width: float, height: float):
    """Constrained layout: panels, titles and colour bars placed without overlapping."""
    return new_figure(width, height, layout="constrained")


def _show(ax, pixels, title: str = "", fontsize: int = 9) -> None:
    shown, cmap = to_display(pixels)
    ax.imshow(shown, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    image_axes(ax, title, fontsize)


def _stretch(array: np.ndarray) -> np.ndarray:
    """Any array -> uint8 spanning 0..255, for weights and optimized images whose scale means nothing."""
    low, high = float(array.min()), float(array.max())
    return ((array - low) / (high - low + 1e-12) * 255).round().astype(np.uint8)


def attribution_figure(
    pixels: np.ndarray, maps: np.ndarray, titles: list[str], labels: list[str], heading: str, signed: bool
):
    """One row per image: the image titled `titles[i]`, then its map titled `labels[i]` over the image, with a
    colour bar. The map's opacity follows its strength, so the photo shows at full brightness where the map says
    nothing. Signed maps are red for the class, blue against it."""
    n = len(pixels)
    fig = _figure(2 * PANEL + 0.9, n * PANEL + 0.5)
    axes = fig.subplots(n, 2, squeeze=False)
    for (ax_image, ax_map), image, heat, title, label in zip(axes, pixels, maps, titles, labels):
        _show(ax_image, image, title)
        shown, cmap = to_display(image)
        ax_map.imshow(shown, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        limit = float(np.abs(heat).max()) or 1.0
        artist = ax_map.imshow(
            heat,
            cmap="RdBu_r" if signed else "inferno",
            interpolation="nearest",
            alpha=np.clip(0.8 * np.abs(heat) / limit, 0, 1),
            vmin=-limit if signed else 0,
            vmax=limit,
        )
        image_axes(ax_map, label)
        fig.colorbar(artist, ax=ax_map, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    fig.suptitle(heading, fontsize=10)
    return fig


def feature_maps_figure(pixels: np.ndarray, maps: np.ndarray, titles: list[str], heading: str):
    """For each image: the image, then its feature maps ([K, h, w]) at most 9 to a row, one colour scale per image
    (so a weak channel looks weak); a linear layer's [F] outputs are drawn as bars."""
    n = len(pixels)
    spatial = maps.ndim == 4
    k = maps.shape[1] if spatial else 1
    rows_each = math.ceil((k + 1) / 9)
    cols = math.ceil((k + 1) / rows_each) if spatial else 4
    fig = _figure(cols * 1.5 + 0.8, n * rows_each * 1.6 + 0.5)
    grid = fig.add_gridspec(n * rows_each, cols)
    for i in range(n):
        _show(fig.add_subplot(grid[i * rows_each, 0]), pixels[i], titles[i], fontsize=8)
        if not spatial:
            ax = fig.add_subplot(grid[i * rows_each, 1:])
            ax.bar(np.arange(maps.shape[1]), maps[i], width=1.0, color="tab:blue")
            ax.set_xlabel("unit", fontsize=8)
            ax.set_ylabel("output", fontsize=8)
            ax.tick_params(labelsize=7)
            continue
        high = float(maps[i].max()) or 1.0
        low = min(float(maps[i].min()), 0.0)
        for c in range(k):
            r, q = divmod(c + 1, cols)
            ax = fig.add_subplot(grid[i * rows_each + r, q])
            artist = ax.imshow(maps[i, c], cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
            image_axes(ax, f"channel {c}", fontsize=8)
        fig.colorbar(artist, ax=fig.axes[-k:], fraction=0.02, pad=0.01).ax.tick_params(labelsize=7)
    fig.suptitle(heading, fontsize=10)
    return fig


def filters_figure(weights: np.ndarray, heading: str, columns: int = 8):
    """Filters [O, C, kh, kw]: colour filters as RGB images (each stretched to its own range); one-channel filters
    on one shared signed scale, so that positive (red) and negative (blue) weights read the same everywhere."""
    o, c = weights.shape[:2]
    rows, cols = math.ceil(o / columns), min(columns, o)
    fig = _figure(cols * 1.2 + 0.9, rows * 1.3 + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    limit = float(np.abs(weights).max()) or 1.0
    artist = None
    for i, ax in enumerate(axes.flat):
        if i >= o:
            ax.axis("off")
            continue
        if c == 3:
            ax.imshow(_stretch(weights[i]).transpose(1, 2, 0), interpolation="nearest")
        else:
            artist = ax.imshow(weights[i].mean(0), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        image_axes(ax, f"filter {i}", fontsize=8)
    if artist is not None:
        fig.colorbar(artist, ax=axes, fraction=0.02, pad=0.01, label="weight").ax.tick_params(labelsize=7)
    fig.suptitle(heading, fontsize=10)
    return fig


def patches_figure(top, heading: str):
    """Zeiler & Fergus's grid: a row per channel, its strongest patches from left to right, titled with the
    activation and the image they came from."""
    k, p = top.index.shape
    fig = _figure(p * 1.05 + 0.9, k * 1.2 + 0.6)
    axes = fig.subplots(k, p, squeeze=False)
    for row, channel in enumerate(top.channels):
        for col in range(p):
            ax = axes[row, col]
            _show(ax, top.patches[row][col], f"{top.value[row, col]:.2f} (#{top.index[row, col]})", fontsize=7)
        axes[row, 0].set_ylabel(f"channel {channel}", fontsize=9)
    fig.suptitle(heading, fontsize=10)
    return fig


def depth_patches_figure(tops: list, titles: list[str], heading: str):
    """Zeiler & Fergus's figure across depth: one block of rows per layer, shallow to deep, each row a channel
    and its strongest patches; `titles[i]` heads block i (its layer and the size of its patches)."""
    p = max(top.index.shape[1] for top in tops)
    rows = [len(top.channels) for top in tops]
    fig = _figure(p * 1.0 + 0.9, sum(rows) * 1.05 + 0.45 * len(tops) + 0.6)
    blocks = fig.subfigures(len(tops), 1, height_ratios=[r + 0.45 for r in rows], squeeze=False)[:, 0]
    for block, top, title in zip(blocks, tops, titles):
        axes = block.subplots(len(top.channels), p, squeeze=False)
        for row, channel in enumerate(top.channels):
            for col in range(p):
                if col < top.index.shape[1]:
                    _show(
                        axes[row, col], top.patches[row][col], f"{top.value[row, col]:.2f} (#{top.index[row, col]})", 6
                    )
                else:
                    axes[row, col].axis("off")
            axes[row, 0].set_ylabel(f"ch {channel}", fontsize=8)
        block.suptitle(title, fontsize=9, x=0.02, ha="left")
    fig.suptitle(heading, fontsize=10)
    return fig


def maximize_figure(result, heading: str):
    """The starting noise, the picture found, and the objective step by step."""
    fig = _figure(3 * PANEL + 1.0, PANEL + 0.7)
    ax_start, ax_image, ax_curve = fig.subplots(1, 3)
    _show(ax_start, result.start, f"start: faint noise\n{result.start_value:.3g}")
    _show(ax_image, result.image, f"after {len(result.history)} steps\n{result.final_value:.3g}")
    ax_curve.plot(result.history, lw=1)
    ax_curve.set_xlabel("step", fontsize=8)
    ax_curve.set_ylabel("objective (with jitter)", fontsize=8)
    ax_curve.tick_params(labelsize=7)
    ax_curve.grid(alpha=0.3)
    ax_curve.set_title("gradient ascent", fontsize=9)
    fig.suptitle(heading, fontsize=10)
    return fig


def deepdream_figure(originals: np.ndarray, dreamed: np.ndarray, titles: list[str], heading: str):
    n = len(originals)
    fig = _figure(2 * PANEL + 0.3, n * PANEL + 0.5)
    axes = fig.subplots(n, 2, squeeze=False)
    for (ax_in, ax_out), image, dream, title in zip(axes, originals, dreamed, titles):
        _show(ax_in, image, title)
        _show(ax_out, dream, "dreamed")
    fig.suptitle(heading, fontsize=10)
    return fig


def capsule_dims_figure(grid: np.ndarray, steps, heading: str):
    """Rows: the capsule's dimensions; columns: the nudge added to that one dimension (the paper's Figure 4)."""
    dims, n_steps = grid.shape[:2]
    fig = _figure(0.75 * n_steps + 0.8, 0.75 * dims + 0.8)
    axes = fig.subplots(dims, n_steps, squeeze=False)
    for d in range(dims):
        for s in range(n_steps):
            _show(axes[d, s], grid[d, s], f"{steps[s]:+.2f}" if d == 0 else "", fontsize=7)
        axes[d, 0].set_ylabel(f"dim {d}", fontsize=7)
    fig.suptitle(heading, fontsize=10)
    return fig


def top_losses_figure(found, heading: str, columns: int = 4):
    """fastai's top losses: each image titled predicted / actual / loss / probability of the prediction."""
    n = len(found.index)
    rows = max(1, math.ceil(n / columns))
    fig = _figure(columns * PANEL * 0.8, rows * PANEL * 0.85 + 0.5)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, actual, predicted, loss, probability in zip(
        axes.flat, found.images, found.actual, found.predicted, found.loss, found.probability
    ):
        _show(
            ax,
            image,
            f"{short(found.classes[predicted])} / {short(found.classes[actual])}\n{loss:.2f} / {probability:.2f}",
            fontsize=8,
        )
    fig.suptitle(heading, fontsize=10)
    return fig


def heat_overlay(image: np.ndarray, heat: np.ndarray, signed: bool) -> np.ndarray:
    """A heat map over a uint8 grey or RGB image -> uint8 RGB: the colour map of `cnnlab explain`'s figure
    (inferno, or RdBu for signed maps), its opacity 0.8 x the map's strength, so weak evidence leaves the image."""
    import matplotlib

    limit = float(np.abs(heat).max()) or 1.0
    scaled = (heat / limit + 1) / 2 if signed else heat / limit  # the colour map's 0..1
    colours = matplotlib.colormaps["RdBu_r" if signed else "inferno"](np.clip(scaled, 0, 1))[..., :3] * 255
    alpha = np.clip(0.8 * np.abs(heat) / limit, 0, 1)[..., None]
    base = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    return (base * (1 - alpha) + colours * alpha).round().astype(np.uint8)
