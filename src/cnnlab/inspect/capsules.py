"""What a capsule network's capsules encode (Sabour et al. 2017, Figure 4), as arrays."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.errors import CnnlabError
from cnnlab.predict import as_predictor

STEPS = torch.arange(-0.25, 0.2501, 0.05)


def capsule_dimensions(model_or_run, image, steps: torch.Tensor = STEPS) -> np.ndarray:
    """For one image, each dimension of its predicted class's capsule nudged by each step and decoded.

    Returns uint8 [dimensions, steps, C, H, W]: row d shows what dimension d encodes (stroke width, skew, ...).
    """
    predictor = as_predictor(model_or_run)
    if not predictor.capsules:
        raise CnnlabError("capsule dimensions need a capsule network (a run of `cnnlab train capsnet`)")
    x = predictor.inputs(image)[:1]
    grid = predictor.model.perturb_dimensions(x[0], steps)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
