"""Every figure cnnlab draws, in one place: matplotlib with the Agg backend, written atomically as PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.files import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> Path:
    plt = _plt()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def to_display(image) -> tuple[np.ndarray, str | None]:
    """[C, H, W] uint8 -> something imshow draws, with the colour map to use."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image, ("gray" if image.ndim == 2 else None)


def training_curves(history: list[dict], path, best_epoch: int | None = None) -> Path:
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy (%)")):
        scale = 100 if key == "acc" else 1
        ax.plot(epochs, [scale * h[f"train_{key}"] for h in history], "o-", ms=3, label="train")
        ax.plot(epochs, [scale * h[f"valid_{key}"] for h in history], "o-", ms=3, label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("Loss per epoch (train measured with dropout on)")
    ax_acc.set_title("Accuracy per epoch")
    return save(fig, path)


def confusion_matrix(confusion, classes: list[str], path) -> Path:
    """Rows are true classes, columns predictions; colour is the row-normalized rate, text the count."""
    plt = _plt()
    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    n = len(classes)
    size = max(5, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    accuracy = np.trace(counts) / max(1, counts.sum())
    ax.set_title(f"Confusion matrix on the test set (accuracy {100 * accuracy:.2f}%)")
    return save(fig, path)


def sample_grid(images, true, pred, classes: list[str], path, columns: int = 8, n_wrong: int = 0) -> Path:
    """Test images titled 'predicted (true)': green when right, red when wrong; the last `n_wrong` are
    mistakes picked on purpose, since the first images of a good model are almost all right."""
    plt = _plt()
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, np.asarray(true), np.asarray(pred)):
        shown, cmap = to_display(image)
        ax.imshow(shown, cmap=cmap)
        ax.set_title(f"{classes[p]} ({classes[t]})", color="green" if p == t else "red", fontsize=8)
    note = f"; the last {n_wrong} are mistakes picked from the whole test set" if n_wrong else ""
    fig.suptitle(f"Test images: predicted (true){note}", fontsize=10)
    return save(fig, path)


def augment_preview(grid: np.ndarray, spec: str, path) -> Path:
    """The grid from cnnlab.data.augment.preview: originals in the first column, augmented copies beside."""
    plt = _plt()
    rows, cols = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(min(14, 2 + cols / 25), min(14, 1 + rows / 25)))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
    ax.set_title(f"original | augmented copies: {spec}", fontsize=10)
    ax.axis("off")
    return save(fig, path)


def compare_curves(names: list[str], histories: list[list[dict]], path) -> Path:
    """Validation loss and accuracy of several runs on shared axes: the lesson's MLP-vs-CNN comparison."""
    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in zip(names, histories):
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["valid_loss"] for h in history], "o-", ms=3, label=name)
        ax_acc.plot(epochs, [100 * h["valid_acc"] for h in history], "o-", ms=3, label=name)
    for ax, label in ((ax_loss, "validation loss"), (ax_acc, "validation accuracy (%)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("Validation loss per epoch")
    ax_acc.set_title("Validation accuracy per epoch")
    return save(fig, path)
