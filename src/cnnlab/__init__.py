"""cnnlab: learn, train, inspect and visualize convolutional neural networks for image classification.

import cnnlab
run = cnnlab.train("mlp", "mnist")        # or cnnlab.load("runs/mlp-mnist")
run.predict(["digit.png"]); run.explain("digit.png", "saliency").figure
"""

import os

# OpenMP threads that wait for work sleep instead of spinning: beside other busy processes a spinning thread takes
# the core its partner needs, and an MLP epoch took 7-10x longer than with one thread (bench/epoch_under_load.py).
# Read when torch loads OpenMP, so it holds where cnnlab is imported before torch (always by the command line).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cnnlab.version import __version__  # noqa: E402

API = ("Run", "explore", "load", "resume", "train")  # in cnnlab.api
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    # imported on first use: `cnnlab filter` and `--help` must start without loading torch
    if name in API:
        from cnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
