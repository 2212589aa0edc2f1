"""A recipe is everything about *how* a model is trained, kept apart from the model itself.

Each model registers its recipes (`default`: our fastest route to the target accuracy; `lesson`: the course
notebook's settings; a data set's name: settings tuned for that data set), and every field can be overridden from
the command line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adamw"      # sgd | adam | adamw
    momentum: float = 0.9         # sgd only
    nesterov: bool = False        # sgd only
    weight_decay: float = 0.0
    schedule: str = "onecycle"    # constant | onecycle (linear warm-up, then cosine to ~0) | exponential
    warmup: float = 0.2           # onecycle: fraction of the steps spent warming up
    decay: float = 0.96           # exponential: lr multiplier per epoch (applied a little every step)
    label_smoothing: float = 0.0
    augment: str = ""             # e.g. "flip,crop=4" (see cnnlab.data.augment)

    def replace(self, **changes) -> "Recipe":
        """A copy with the given fields changed; None values are ignored (unset command-line options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def lr_at(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step `step` (0-based): a pure function, so resuming needs no scheduler state."""
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "exponential":       # smooth, as the paper's TensorFlow code decays it
            return self.lr * self.decay ** (step / steps_per_epoch)
        if self.schedule == "onecycle":
            import math

            warm = max(1, int(self.warmup * total_steps))
            if step < warm:
                return self.lr * (0.1 + 0.9 * step / warm)
            t = (step - warm) / max(1, total_steps - warm)
            return self.lr * (0.002 + 0.998 * 0.5 * (1 + math.cos(math.pi * t)))
        raise ValueError(f"unknown schedule {self.schedule!r}")
