"""Data: the data sets by name, read once into uint8 tensors; batches made and normalized on the training device.

The names import without torch (the command line offers them); the rest is imported on the first use of one of
its names, e.g. `from cnnlab.data import load_dataset`.
"""

from cnnlab.data.names import DATASETS

__all__ = ["DATASETS", "Batches", "Dataset", "ImageSet", "Preprocess", "channel_stats", "load_dataset", "split"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'cnnlab.data' has no attribute {name!r}")
    from cnnlab.data import batches, datasets, preprocess

    for module in (batches, datasets, preprocess):
        globals().update({n: getattr(module, n) for n in __all__ if hasattr(module, n)})
    return globals()[name]
