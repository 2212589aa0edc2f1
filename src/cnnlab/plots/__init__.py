"""Every figure cnnlab draws. Each figure function returns a matplotlib Figure; `save(fig, path)` writes it:

    from cnnlab.plots import save, training_curves
    save(training_curves(history), "curves.png")

`base` holds what all figures share, `training`, `inspection` and `filters` the figures of those commands.
Nothing here imports torch, and matplotlib only when a figure is made.
"""

from cnnlab.plots.base import new_figure, save, to_display
from cnnlab.plots.filters import conv_demo_figure, filter_figure, response_figure, spectrum_figure
from cnnlab.plots.inspection import (
    attribution_figure,
    capsule_dims_figure,
    deepdream_figure,
    depth_patches_figure,
    feature_maps_figure,
    filters_figure,
    maximize_figure,
    patches_figure,
    top_losses_figure,
)
from cnnlab.plots.training import (
    augment_preview,
    compare_curves,
    confusion_matrix,
    lr_find_figure,
    reconstructions,
    sample_grid,
    training_curves,
)

__all__ = [
    "attribution_figure",
    "augment_preview",
    "capsule_dims_figure",
    "compare_curves",
    "confusion_matrix",
    "conv_demo_figure",
    "deepdream_figure",
    "feature_maps_figure",
    "filter_figure",
    "filters_figure",
    "lr_find_figure",
    "maximize_figure",
    "new_figure",
    "depth_patches_figure",
    "patches_figure",
    "reconstructions",
    "response_figure",
    "sample_grid",
    "save",
    "spectrum_figure",
    "to_display",
    "top_losses_figure",
    "training_curves",
]
