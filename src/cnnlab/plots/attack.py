"""The figures of adversarial examples and memorization: accuracy against eps with a gallery of attacked images,
and training curves on true and corrupted data."""

from __future__ import annotations

import numpy as np

from cnnlab.plots.base import image_axes, new_figure, short, to_display


def magnified(perturbation: np.ndarray) -> np.ndarray:
    """A perturbation [C, H, W] in pixel units as uint8, stretched so its largest change is black or white
    (grey is no change): the few-percent changes of an attack would be invisible at their real size."""
    scale = max(float(np.abs(perturbation).max()), 1e-12)
    return np.round(127.5 + 127.5 * perturbation / scale).clip(0, 255).astype(np.uint8)


def attack_figure(results: list[dict], gallery: list[dict], classes: list[str], title: str):
    """Left: accuracy against eps. Right: for the largest eps, clean / perturbation (magnified) / adversarial images
    of a few test images, each with the model's answer (red where it is wrong)."""
    shown = gallery[-1]
    k = len(shown["labels"])
    figure = new_figure(3.6 + 1.25 * k, 4.4, layout="constrained")
    grid = figure.add_gridspec(3, k + 3)
    ax = figure.add_subplot(grid[:, :3])
    eps = [r["eps"] for r in results]
    ax.plot(eps, [100 * r["accuracy"] for r in results], "o-", label="accuracy")
    if "target_rate" in results[0]:
        ax.plot(eps, [100 * r["target_rate"] for r in results], "s--", label="on the target class")
        ax.legend(fontsize=8)
    ax.set(xlabel="eps (pixel units, 0..1)", ylabel="test accuracy (%)", ylim=(-2, 102), title=title)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    rows = (
        ("clean", shown["clean"], shown["clean_predictions"]),
        (f"x{1 / max(1e-12, float(np.abs(shown['perturbation']).max())):.0f}", None, None),
        (f"eps {shown['eps']:g}", shown["adversarial"], shown["predictions"]),
    )
    for row, (name, images, predictions) in enumerate(rows):
        for i in range(k):
            ax = figure.add_subplot(grid[row, 3 + i])
            if images is None:
                image, cmap = to_display(magnified(shown["perturbation"][i]))
                image_axes(ax, "perturbation" if i == 0 else "", fontsize=7)
                ax.imshow(image, cmap=cmap or None, vmin=0, vmax=255)
                ax.set_ylabel(name, fontsize=7)
                continue
            image, cmap = to_display(images[i])
            ax.imshow(image, cmap=cmap, vmin=0, vmax=255)
            wrong = predictions[i] != shown["labels"][i]
            image_axes(ax, short(classes[predictions[i]], 10), fontsize=7)
            ax.title.set_color("red" if wrong else "black")
            if i == 0:
                ax.set_ylabel(name, fontsize=7)
    return figure


def memorize_figure(curves: list[dict], model: str, dataset: str, size: int, recipe: str = "", mark: float = 0.99):
    """Training loss and accuracy against steps, one line per corruption, its test accuracy in the legend; a dot
    where each curve's accuracy first reaches `mark` (its "fitted_at" step), so which one fits first can be read."""
    figure = new_figure(10, 3.8, layout="constrained")
    loss_ax, acc_ax = figure.subplots(1, 2)
    for curve in curves:
        at = curve.get("fitted_at")
        reached = f"{100 * mark:g}% at {at:,} steps" if at else f"{100 * mark:g}% not reached"
        label = f"{curve['label']}: {reached}, test {100 * curve['test_accuracy']:.1f}%"
        (line,) = loss_ax.plot(curve["steps"], curve["loss"], label=label)
        acc_ax.plot(curve["steps"], [100 * a for a in curve["accuracy"]], color=line.get_color(), label=label)
        if at:
            acc_ax.plot([at], [100 * curve["accuracy"][curve["steps"].index(at)]], "o", color=line.get_color())
            loss_ax.axvline(at, color=line.get_color(), linestyle=":", linewidth=1)
    acc_ax.axhline(100 * mark, color="grey", linestyle="--", linewidth=0.8)
    title = f"{model} on {size:,} {dataset} images" + (f"\n{recipe}" if recipe else "")
    loss_ax.set(xlabel="training steps", ylabel="training loss", title=title)
    acc_ax.set(
        xlabel="training steps",
        ylabel="training accuracy (%, running over each epoch)",
        ylim=(0, 101),
        title=f"each trained until it fits its training set (dots: {100 * mark:g}%)",
    )
    acc_ax.legend(fontsize=8, loc="lower right")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(10)
    return figure
