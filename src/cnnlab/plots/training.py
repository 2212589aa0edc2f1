"""The training pictures: loss and accuracy curves, the confusion matrix, test images with their predictions,
capsule reconstructions, augmentation previews. Each function returns a Figure; `save(fig, path)` writes it."""

from __future__ import annotations

import textwrap

import numpy as np

from cnnlab.plots.base import new_figure, short, to_display


def wide_range(losses: list[float]) -> bool:
    """Whether losses are drawn on a log scale: when they span more than 30x (one diverging epoch), so that it
    does not flatten the others."""
    return bool(losses) and min(losses) > 0 and max(losses) / min(losses) > 30


def _epoch_panels(lines, titles: tuple[str, str], best_epoch: int | None = None):
    """Loss beside accuracy per epoch; `lines` are (label, history, "train" or "valid") to draw on both. Epochs
    are whole numbers; a loss of a wide range is drawn on a log scale (`wide_range`)."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, key, ylabel, title in zip(axes, ("loss", "acc"), ("loss", "accuracy (%)"), titles):
        scale = 100 if key == "acc" else 1
        values, epochs = [], sorted({h["epoch"] for _, history, _ in lines for h in history})
        for label, history, part in lines:
            ys = [scale * h[f"{part}_{key}"] for h in history]
            ax.plot([h["epoch"] for h in history], ys, "o-", ms=3, label=label)
            values += ys
        if key == "loss" and wide_range(values):
            ax.set_yscale("log")
            ylabel += " (log scale)"
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best (epoch {best_epoch})")
        if len(epochs) <= 12:
            ax.set_xticks(epochs)  # one tick per epoch (one or two epochs would get fractional ones)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def training_curves(history: list[dict], best_epoch: int | None = None, train_note: str = ""):
    """Train and validation loss and accuracy per epoch. `train_note` says how the train figures were measured
    when they are not comparable to validation's, e.g. "dropout on; augmented images"."""
    loss_title = "Loss per epoch" + ("\n" + textwrap.fill(f"(train: {train_note})", 60) if train_note else "")
    return _epoch_panels(
        [("train", history, "train"), ("validation", history, "valid")], (loss_title, "Accuracy per epoch"), best_epoch
    )


def confusion_matrix(confusion, classes: list[str]):
    """Rows are true classes, columns predictions; colour is the row-normalized rate, text the count."""
    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    n = len(classes)
    size = min(14, max(5, 0.55 * n + 2))
    fig = new_figure(size + 1, size)
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 40:  # beyond that the names overlap: the colours still show the pattern
        ax.set_xticks(range(n), [short(c) for c in classes], rotation=45, ha="right")
        ax.set_yticks(range(n), [short(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    accuracy = np.trace(counts) / max(1, counts.sum())
    ax.set_title(f"Confusion matrix on the test set (accuracy {100 * accuracy:.2f}%)")
    return fig


def sample_grid(images, true, pred, classes: list[str], columns: int = 8, n_wrong: int = 0):
    """Test images titled 'predicted (true)': green when right, red when wrong; the last `n_wrong` are
    mistakes picked on purpose, since the first images of a good model are almost all right."""
    n = len(images)
    rows = -(-n // columns)
    fig = new_figure(1.6 * columns, 2.0 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, np.asarray(true), np.asarray(pred)):
        shown, cmap = to_display(image)
        ax.imshow(shown, cmap=cmap)
        ax.set_title(f"{short(classes[p])}\n({short(classes[t])})", color="green" if p == t else "red", fontsize=8)
    note = f"; the last {n_wrong} are mistakes picked from the whole test set" if n_wrong else ""
    fig.suptitle(f"Test images: predicted (true){note}", fontsize=10)
    return fig


def reconstructions(originals, reconstructed):
    """Inputs (top row of each pair) above what the capsule network's decoder rebuilds from their capsules."""
    n = len(originals)
    fig = new_figure(1.1 * n, 2.6)
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, image in enumerate((originals[i], reconstructed[i])):
            shown, cmap = to_display(image)
            axes[row, i].imshow(shown, cmap=cmap, vmin=0, vmax=255)
            axes[row, i].axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    fig.suptitle("Test digits and their reconstructions from the predicted class's capsule", fontsize=10)
    return fig


def augment_preview(grid: np.ndarray, spec: str):
    """The grid from cnnlab.data.augment.preview: originals in the first column, augmented copies beside."""
    rows, cols = grid.shape[:2]
    fig = new_figure(min(14, 2 + cols / 25), min(14, 1 + rows / 25))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
    ax.set_title(f"original | augmented copies: {spec}", fontsize=10)
    ax.axis("off")
    return fig


def compare_curves(names: list[str], histories: list[list[dict]]):
    """Validation loss and accuracy of several runs on shared axes: the lesson's MLP-vs-CNN comparison."""
    return _epoch_panels(
        [(name, history, "valid") for name, history in zip(names, histories)],
        ("Validation loss per epoch", "Validation accuracy per epoch"),
    )


def lr_find_figure(found):
    """The range test's loss against the learning rate (log scale), the suggestion and the recipe's own marked."""
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    ax.plot(found.lrs, found.losses, lw=1.5)
    ax.set_xscale("log")
    ax.axvline(found.suggestion, color="tab:red", ls="--", lw=1, label=f"suggested {found.suggestion:.1e}")
    ax.axvline(found.recipe_lr, color="gray", ls=":", lw=1, label=f"the recipe's {found.recipe_lr:.1e}")
    ax.set(
        xlabel="learning rate (log scale)",
        ylabel="training loss (smoothed)",
        title="Learning-rate range test: a tenth of the rate where the loss is lowest",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
