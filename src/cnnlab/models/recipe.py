"""A recipe is everything about *how* a model is trained, kept apart from the model itself.

Each model registers its recipes next to its definition (`default`: our fastest route to the target accuracy;
`lesson`: the course notebook's settings; a data set's name: settings tuned for that data set), and every field
can be overridden. A recipe checks itself when it is made, so a bad value is refused the same way from Python and
from the command line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from cnnlab.errors import CnnlabError, whole, within

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "onecycle", "exponential")
FREEZES = ("", "features")
ADVERSARIAL_METHODS = ("fgsm", "pgd")  # adversarial training's attacks (cnnlab.training.adversarial)


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adamw"  # sgd | adam | adamw
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    bias_lr_scale: float = 1.0  # learning-rate multiplier for biases and norm shifts (the parameters not decayed)
    schedule: str = "onecycle"  # constant | onecycle (linear warm-up, then cosine to ~0) | exponential
    warmup: float = 0.2  # onecycle: fraction of the steps spent warming up
    decay: float = 0.96  # exponential: lr multiplier per epoch (applied a little every step)
    label_smoothing: float = 0.0
    augment: str = ""  # e.g. "flip,crop=4" (see cnnlab.data.augment)
    lookahead: bool = False  # every few steps pull the weights back toward their running average (airbench's)
    dropout: float | None = None  # models with dropout: its rate in training (None: the model's own)
    freeze: str = ""  # "features": train only the new last layer (transfer learning from --weights)
    pretrained_lr_scale: float = 1.0  # learning-rate multiplier for the layers --weights set (fine-tuning: < 1)
    valid_fraction: float = 0.2  # share of the training set held out for validation (the figures quoted used it)
    adversarial: str = ""  # train on attacked batches: fgsm (fast, random start) | pgd; "" off
    adv_eps: float | None = None  # the attack's size in pixel units 0..1 (MNIST: 0.1-0.3; CIFAR-10: 8/255)

    def __post_init__(self):
        from cnnlab.data.augment import parse_augment

        whole(self.epochs, "epochs", 1, 100_000)
        whole(self.batch_size, "batch size")
        within(self.lr, "learning rate", 0, math.inf, "more than 0", low_open=True, high_open=True)
        within(self.momentum, "momentum", 0, 1, "in [0, 1)", high_open=True)
        within(
            self.bias_lr_scale,
            "bias learning-rate scale",
            0,
            10_000,
            "more than 0 (1: the same as the weights)",
            low_open=True,
        )
        within(self.weight_decay, "weight decay", 0, 100, "from 0 to 100 (usual values: 5e-4 to 0.1)")
        within(self.warmup, "warm-up fraction", 0, 1, "in [0, 1)", high_open=True)
        within(self.decay, "decay", 0, 1, "in (0, 1], the learning rate's multiplier per epoch", low_open=True)
        within(self.label_smoothing, "label smoothing", 0, 1, "in [0, 1)", high_open=True)
        within(self.pretrained_lr_scale, "pretrained learning-rate scale", 0, 1, "in (0, 1]", low_open=True)
        if self.freeze not in FREEZES:
            raise CnnlabError(f"freeze {self.freeze!r}: use features (train the last layer only) or nothing")
        within(
            self.valid_fraction,
            "validation fraction",
            0,
            1,
            "between 0 and 1 (both excluded), e.g. 0.2",
            low_open=True,
            high_open=True,
        )
        if self.dropout is not None:
            within(self.dropout, "dropout", 0, 1, "in [0, 1)", high_open=True)
        for value, name, known in ((self.optimizer, "optimizer", OPTIMIZERS), (self.schedule, "schedule", SCHEDULES)):
            if value not in known:
                raise CnnlabError(f"unknown {name} {value!r}; use one of {', '.join(known)}")
        parse_augment(self.augment)
        if self.adversarial and self.adversarial not in ADVERSARIAL_METHODS:
            raise CnnlabError(
                f"unknown adversarial training {self.adversarial!r}; use one of {', '.join(ADVERSARIAL_METHODS)}"
            )
        if self.adversarial and self.adv_eps is None:
            raise CnnlabError(
                "adversarial training needs its eps: add --adv-eps E in pixel units 0..1 "
                "(e.g. 0.1 for MNIST, 0.03 for CIFAR-10)"
            )
        if self.adv_eps is not None:
            within(self.adv_eps, "adversarial eps", 0, 1, "in (0, 1], in pixel units", low_open=True)

    def replace(self, **changes) -> Recipe:
        """A copy with the given fields changed; None values are ignored (unset command-line options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for the training log, e.g. 'sgd lr 0.05 onecycle, batch 128, 10 epochs'."""
        schedule = self.schedule + (f" x{self.decay:g}/epoch" if self.schedule == "exponential" else "")
        lookahead = " with lookahead" if self.lookahead else ""
        dropout = "" if self.dropout is None else f", dropout {self.dropout:g}"
        smoothing = f", label smoothing {self.label_smoothing:g}" if self.label_smoothing else ""
        transfer = (", features frozen" if self.freeze else "") + (
            f", pretrained layers at x{self.pretrained_lr_scale:g} lr" if self.pretrained_lr_scale != 1 else ""
        )
        adversarial = f", adversarial {self.adversarial} eps {self.adv_eps:g}" if self.adversarial else ""
        return (
            f"{self.optimizer}{lookahead} lr {self.lr} {schedule}, batch {self.batch_size}, {self.epochs} epochs"
            f"{dropout}{smoothing}{transfer}{adversarial}"
        )

    def lr_at(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step `step` (0-based): a pure function, so resuming needs no scheduler state."""
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "exponential":  # smooth, as the paper's TensorFlow code decays it
            return self.lr * self.decay ** (step / steps_per_epoch)
        warm = max(1, int(self.warmup * total_steps))
        if step < warm:
            return self.lr * (0.1 + 0.9 * step / warm)
        t = (step - warm) / max(1, total_steps - warm)
        return self.lr * (0.002 + 0.998 * 0.5 * (1 + math.cos(math.pi * t)))


# Transfer learning from ImageNet weights (`--weights imagenet`): AdamW, few epochs, the photos augmentation.
# frozen: only the new last layer learns; finetune: every layer, the pretrained ones at a tenth of the rate.
TRANSFER_RECIPES = {
    "frozen": Recipe(epochs=5, batch_size=32, lr=3e-3, weight_decay=0.01, augment="photos", freeze="features"),
    "finetune": Recipe(epochs=5, batch_size=32, lr=1e-3, weight_decay=0.01, augment="photos", pretrained_lr_scale=0.1),
}
