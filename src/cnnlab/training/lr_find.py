"""The learning-rate range test (Smith 2017, fastai's `lr_find`): one short sweep, the learning rate growing
exponentially every step, the loss noted; where the loss falls fastest is where training learns.

    found = lr_find(make_config("mlp", "mnist"))
    found.suggestion          # e.g. 2.1e-03: pass it as --lr
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass

from cnnlab.data.augment import augment_for
from cnnlab.errors import CnnlabError, whole
from cnnlab.training.assemble import Training
from cnnlab.training.config import RunConfig
from cnnlab.training.metrics import autocast, loss_and_scores
from cnnlab.training.optimizer import set_lr


@dataclass
class LrFinding:
    lrs: list[float]
    losses: list[float]  # smoothed (exponential moving average, bias-corrected)
    suggestion: float  # a tenth of the learning rate of the lowest loss
    recipe_lr: float  # the recipe's own, for comparison


def lr_find(
    config: RunConfig, start: float = 1e-7, end: float = 10.0, steps: int = 100, data=None, progress: bool = True
) -> LrFinding:
    """Train from scratch for up to `steps` batches with the recipe's optimizer, the learning rate going from
    `start` to `end`; stop once the loss is 4x its lowest or not finite. Nothing is saved."""
    from tqdm import trange

    whole(steps, "steps", 10, 100_000)
    if not 0 < start < end:
        raise CnnlabError(f"lr-find: need 0 < start ({start:g}) < end ({end:g})")
    with tempfile.TemporaryDirectory() as unused:  # a Training wants a folder; the sweep writes nothing
        training = Training(config, unused, data)
    recipe = config.recipe
    batches = training.batches(
        training.train_set, shuffle=True, augment=augment_for(recipe.augment, training.preprocess)
    )
    training.model.train()
    lrs, losses, average, best = [], [], 0.0, math.inf
    stream = iter(batches)
    for step in trange(steps, desc="lr-find", unit="step", leave=False, disable=None if progress else True):
        lr = start * (end / start) ** (step / (steps - 1))
        batch = next(stream, None)
        if batch is None:  # more steps than batches: go round again
            stream = iter(batches)
            batch = next(stream)
        x, y = batch
        set_lr(training.optimizer, lr)
        with autocast(config.device, training.precision):
            loss, _ = loss_and_scores(training.model, x, y, recipe.label_smoothing)
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        training.optimizer.step()
        average = 0.98 * average + 0.02 * loss.item()
        smoothed = average / (1 - 0.98 ** (step + 1))
        if not math.isfinite(smoothed) or smoothed > 4 * best:
            break
        best = min(best, smoothed)
        lrs.append(lr)
        losses.append(smoothed)
    return LrFinding(lrs, losses, lrs[losses.index(min(losses))] / 10, recipe.lr)
