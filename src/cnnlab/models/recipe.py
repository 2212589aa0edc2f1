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
ATTACKS = {  # cnnlab.training.adversarial's, named here without torch for the command line (`cnnlab attack`)
    "fgsm": "one signed gradient step of size eps (FGSM)",
    "pgd": "projected gradient descent in the L-inf ball, from a random start",
    "pgd-l2": "projected gradient descent in the L2 ball, from a random start",
}
ADVERSARIAL_METHODS = ("fgsm", "pgd")  # the attacks adversarial training uses


def check_valid_fraction(value: float) -> float:
    """The share held out for validation: a recipe's, and the run's that copies it."""
    return within(
        value, "validation fraction", 0, 1, "between 0 and 1 (both excluded), e.g. 0.2", low_open=True, high_open=True
    )


def option(default=dataclasses.MISSING, *, help: str, metavar: str | None = None, choices: tuple = ()):
    """A dataclass field that is also a command-line flag, --name-with-dashes: its help, metavar and choices are
    declared here, once, and `cnnlab train` and `cnnlab lr-find` generate their flags from them (cnnlab.cli.flags).
    This module imports no torch, so that the command line can read them and still start at once."""
    return dataclasses.field(default=default, metadata={"help": help, "metavar": metavar, "choices": choices})


@dataclass(frozen=True)
class Recipe:
    epochs: int = option(help="passes over the training set", metavar="N")
    batch_size: int = option(help="images per optimizer step (with --nproc: all processes' together)", metavar="N")
    lr: float = option(help="peak learning rate")
    optimizer: str = option("adamw", help="the optimizer; sgd takes --momentum and --nesterov", choices=OPTIMIZERS)
    momentum: float = option(0.9, help="sgd: its momentum, in [0, 1)", metavar="M")
    nesterov: bool = option(False, help="sgd: Nesterov's momentum (the gradient taken one step ahead)")
    weight_decay: float = option(
        0.0, help="weight decay, decoupled (adamw) or L2 (sgd, adam); biases and norm layers are not decayed"
    )
    bias_lr_scale: float = option(
        1.0, help="learning-rate multiplier for biases and norm layers' parameters (cifar-fast's recipe: 64)"
    )
    schedule: str = option(
        "onecycle",
        help="learning rate over time: constant; onecycle (warm up, then cosine down to ~0); exponential "
        "(multiplied by --decay every epoch, a little each step)",
        choices=SCHEDULES,
    )
    warmup: float = option(
        0.2, help="onecycle: the share of the steps spent warming up, from a tenth of --lr to --lr", metavar="F"
    )
    decay: float = option(0.96, help="exponential schedule: learning-rate multiplier per epoch")
    label_smoothing: float = option(0.0, help="share of each target spread over the other classes (0: one-hot)")
    augment: str = option(
        "", help="training augmentation, e.g. flip,rotate=10,crop=4 (none: no augmentation)", metavar="SPEC"
    )
    lookahead: bool = option(
        False,
        help="every 5 steps pull the weights back toward their running average, more so near the end "
        "(cifar-fast's recipe: on)",
    )
    dropout: float | None = option(  # None: the model's own rate
        None,
        help="models with dropout: the share of values it zeroes in training "
        "(lesson-cnn's default recipe: 0; the lesson's network: 0.25)",
        metavar="P",
    )
    freeze: str = option(
        "", help="with --weights: train only the new last layer (default recipe: frozen)", choices=FREEZES
    )
    pretrained_lr_scale: float = option(
        1.0, help="with --weights: learning-rate multiplier for the pretrained layers, in (0, 1] (--finetune: 0.1)"
    )
    valid_fraction: float = option(
        0.2,
        help="share of training data held out for validation (default: the recipe's, 0.2 for most; cifar-fast's 0.04)",
        metavar="F",
    )
    adversarial: str = option(  # "": off
        "",
        help="train on attacked batches: fgsm (fast FGSM with a random start, Wong et al. 2020: about twice a "
        "plain step) or pgd (PGD-7, 8x); robust accuracy is reported every epoch",
        choices=ADVERSARIAL_METHODS,
    )
    adv_eps: float | None = option(
        None,
        help="--adversarial: the attack's size in pixel units 0..1 (MNIST: 0.1-0.3, CIFAR-10: 0.03)",
        metavar="E",
    )

    def __post_init__(self):
        from cnnlab.data.augment import parse_augment

        whole(self.epochs, "epochs", 1, 100_000)
        whole(self.batch_size, "batch size")
        within(self.lr, "learning rate", 0, math.inf, "more than 0", low_open=True, high_open=True)
        within(self.momentum, "momentum", 0, 1, "in [0, 1)", high_open=True)
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:  # torch's SGD refuses it mid-run
            raise CnnlabError("nesterov momentum needs a momentum above 0: add --momentum 0.9, or --no-nesterov")
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
        check_valid_fraction(self.valid_fraction)
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
