"""cnnlab: learn, train, inspect and visualize convolutional neural networks for image classification.

    import cnnlab
    run = cnnlab.train("mlp", "mnist")        # or cnnlab.load("runs/mlp-mnist")
    run.predict(["digit.png"]); run.explain("digit.png", "saliency").figure
"""
from cnnlab.version import __version__

API = ("Run", "explore", "load", "resume", "train")           # in cnnlab.api
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    # imported on first use: `cnnlab filter` and `--help` must start without loading torch
    if name in API:
        from cnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
