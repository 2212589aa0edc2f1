"""Adversarial examples: the attacks (FGSM, PGD) and the training step that learns from them.

An attack changes an image by at most `eps` so that the model gets it wrong. It works in pixel units, 0..1, the
way a person measures a change to a picture: the model's own normalization is applied inside, every adversarial
image stays a valid picture (clipped to 0..1), and one eps means the same for every model of a data set.

    fgsm     one step of size eps along the sign of the gradient (Goodfellow et al. 2015)
    pgd      `steps` smaller signed steps, each projected back into the L-inf ball of radius eps, from a random
             start in it; the image with the highest loss met on the way is kept (Madry et al. 2018)
    pgd-l2   the same in the L2 ball: steps along the normalized gradient, radius eps over the whole image

Targeted (a `target` class per image), the loss of the target is driven down instead of the true class's up.
Adversarial training (`--adversarial fgsm|pgd --adv-eps E`) trains on attacked batches; `fgsm` is Wong et al.'s
2020 "fast is better than free": a random start in the ball and one step of 1.25 eps, as cheap as 2 plain steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError, whole, within
from cnnlab.models.recipe import ADVERSARIAL_METHODS, ATTACKS

TRAINING_ATTACKS = ADVERSARIAL_METHODS  # what --adversarial takes
TRAINING_PGD_STEPS = 7  # --adversarial pgd: Madry et al.'s CIFAR-10 setting
FAST_FGSM_STEP = 1.25  # Wong et al.: the step after the random start, in units of eps


@dataclass(frozen=True)
class Attack:
    method: str = "pgd"
    eps: float = 0.1  # pixel units (0..1); the radius of the ball
    steps: int = 10  # pgd only
    step_size: float | None = None  # pgd: default 2.5 eps / steps (Madry et al.); fgsm: eps
    random_start: bool | None = None  # default: on for pgd, off for fgsm (on: Wong et al.'s fast FGSM)

    def __post_init__(self):
        if self.method not in ATTACKS:
            raise CnnlabError(f"unknown attack {self.method!r}; use one of {', '.join(ATTACKS)}")
        within(self.eps, "eps", 0, 1000, "a size in pixel units, 0 or more (0.1 = a tenth of the 0..1 range)")
        whole(self.steps, "steps", 1, 100_000)
        if self.step_size is not None:
            within(self.step_size, "step size", 0, 1000, "more than 0, in pixel units", low_open=True)

    @property
    def iterative(self) -> bool:
        return self.method != "fgsm"

    @property
    def starts_randomly(self) -> bool:
        return self.iterative if self.random_start is None else self.random_start

    @property
    def step(self) -> float:
        if self.step_size is not None:
            return self.step_size
        if not self.iterative:
            return FAST_FGSM_STEP * self.eps if self.starts_randomly else self.eps
        return 2.5 * self.eps / self.steps

    def describe(self) -> str:
        if not self.iterative:
            return f"FGSM eps {self.eps:g}" + (" (random start)" if self.starts_randomly else "")
        norm = "L2" if self.method == "pgd-l2" else "L-inf"
        return f"PGD-{self.steps} {norm} eps {self.eps:g} step {self.step:.3g}"


class InPixels(torch.nn.Module):
    """A model that takes pixels in 0..1: the normalization it was trained with is applied inside."""

    def __init__(self, model: torch.nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean.to(pixels.device)) / self.std.to(pixels.device)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x.device) + self.mean.to(x.device)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.to_input(pixels))


def per_image_loss(scores: torch.Tensor, labels: torch.Tensor, capsules: bool = False) -> torch.Tensor:
    """Cross-entropy of each image. Capsule lengths are probabilities already: their logs are the logits."""
    scores = scores.float()
    if capsules:
        scores = scores.clamp_min(1e-6).log()
    return F.cross_entropy(scores, labels, reduction="none")


def perturb(
    model,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    attack: Attack,
    target: torch.Tensor | None = None,
    capsules: bool = False,
    generator: torch.Generator | None = None,
    keep_best: bool = True,
) -> torch.Tensor:
    """Adversarial copies of `pixels` (float [N, C, H, W] in 0..1) for a model that takes pixels (`InPixels`).
    Untargeted, the loss of `labels` goes up; with `target`, the loss of those classes goes down. Only the input's
    gradient is computed, never the weights': one step costs a forward and a backward pass of the model."""
    pixels = pixels.detach()
    aim, sign = (labels, 1.0) if target is None else (target, -1.0)

    def objective(adv):  # per image: the higher, the more adversarial
        return sign * per_image_loss(model(adv), aim, capsules)

    delta = start(pixels, attack, generator) if attack.starts_randomly else torch.zeros_like(pixels)
    if not attack.iterative:
        return (pixels + clip_delta(delta + attack.step * signed_step(objective, pixels, delta), attack)).clamp(0, 1)
    best, best_value = pixels + delta, None
    for _ in range(attack.steps):
        delta.requires_grad_(True)
        value = objective(pixels + delta)
        (grad,) = torch.autograd.grad(value.sum(), delta)
        if keep_best:
            best, best_value = keep_higher(best, best_value, pixels + delta.detach(), value.detach())
        step = grad.sign() if attack.method == "pgd" else grad / l2(grad).clamp_min(1e-12)
        delta = project(pixels, delta.detach() + attack.step * step, attack)
    if not keep_best:
        return pixels + delta
    with torch.no_grad():
        best, _ = keep_higher(best, best_value, pixels + delta, objective(pixels + delta))
    return best


def signed_step(objective, pixels: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    delta = delta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(pixels + delta).sum(), delta)
    return grad.sign()


def start(pixels: torch.Tensor, attack: Attack, generator) -> torch.Tensor:
    """A random point of the ball (uniform per pixel for L-inf; a random direction and radius for L2), kept
    inside the valid pixels."""
    noise = torch.rand(pixels.shape, generator=generator, device=pixels.device)
    if attack.method == "pgd-l2":
        direction = torch.randn(pixels.shape, generator=generator, device=pixels.device)
        radius = torch.rand((len(pixels), 1, 1, 1), generator=generator, device=pixels.device) * attack.eps
        delta = direction / l2(direction).clamp_min(1e-12) * radius
    else:
        delta = (2 * noise - 1) * attack.eps
    return (pixels + delta).clamp(0, 1) - pixels


def l2(x: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each image, shaped [N, 1, 1, 1] to broadcast."""
    return x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def clip_delta(delta: torch.Tensor, attack: Attack) -> torch.Tensor:
    if attack.method == "pgd-l2":
        return delta * (attack.eps / l2(delta).clamp_min(1e-12)).clamp(max=1)
    return delta.clamp(-attack.eps, attack.eps)


def project(pixels: torch.Tensor, delta: torch.Tensor, attack: Attack) -> torch.Tensor:
    """Back into the ball around the image, then into the valid pixels."""
    return (pixels + clip_delta(delta, attack)).clamp(0, 1) - pixels


def keep_higher(best, best_value, candidate, value):
    if best_value is None:
        return candidate, value
    better = value > best_value
    return torch.where(better.view(-1, 1, 1, 1), candidate, best), torch.maximum(value, best_value)


# --- adversarial training -------------------------------------------------------------------------------------


def training_attack(method: str, eps: float) -> Attack:
    """The attack a recipe's `adversarial` names: fast FGSM (random start, step 1.25 eps) or PGD-7."""
    if method not in TRAINING_ATTACKS:
        raise CnnlabError(f"adversarial training {method!r}: use one of {', '.join(TRAINING_ATTACKS)}")
    if method == "fgsm":
        return Attack("fgsm", eps, random_start=True)
    return Attack("pgd", eps, steps=TRAINING_PGD_STEPS)


class AdversarialBatches:
    """Training batches replaced by their attacked copies: the hook the training loop puts between its batches and
    its step. The attack runs on the model as it trains (train mode), on normalized inputs turned into pixels."""

    def __init__(self, batches, model, preprocess, attack: Attack, capsules: bool, seed: int):
        self.batches, self.attack, self.capsules = batches, attack, capsules
        self.pixel_model = InPixels(model, preprocess.mean, preprocess.std)
        self.generator = torch.Generator(batches.device).manual_seed(seed)

    def __len__(self):
        return len(self.batches)

    def __getattr__(self, name):  # labels, set_epoch, global_batch: the plain batches'
        return getattr(self.batches, name)

    def __iter__(self):
        for x, y in self.batches:
            pixels = self.pixel_model.to_pixels(x)
            adv = perturb(
                self.pixel_model,
                pixels,
                y,
                self.attack,
                capsules=self.capsules,
                generator=self.generator,
                keep_best=False,
            )
            x = self.pixel_model.to_input(adv)
            yield (x.contiguous(memory_format=torch.channels_last) if self.batches.channels_last else x), y


ROBUST_CHECK_STEPS = 10  # each epoch of adversarial training: PGD-10 at the training eps ...
ROBUST_CHECK_IMAGES = 1000  # ... on the first 1000 validation images (a tenth of an MNIST epoch's cost, 10 times)


def robust_check(eps: float) -> Attack:
    return Attack("pgd", eps, steps=ROBUST_CHECK_STEPS)


def robust_accuracy(
    model, batches, preprocess, attack: Attack, capsules: bool = False, limit: int = ROBUST_CHECK_IMAGES, seed: int = 0
) -> float:
    """Accuracy on the first `limit` images of (normalized) `batches` after the attack, in eval mode."""
    was_training = model.training
    model.eval()
    pixel_model = InPixels(model, preprocess.mean, preprocess.std)
    generator = torch.Generator(batches.device).manual_seed(seed)
    correct = seen = 0
    for x, y in batches:
        if seen >= limit:
            break
        x, y = x[: limit - seen], y[: limit - seen]
        adv = perturb(pixel_model, pixel_model.to_pixels(x), y, attack, capsules=capsules, generator=generator)
        with torch.no_grad():
            correct += int((pixel_model(adv).argmax(1) == y).sum())
        seen += len(y)
    model.train(was_training)
    return correct / max(1, seen)


# --- the training loop's hooks: no-ops unless the recipe trains adversarially ------------------------------------


def attacked_batches(training, batches):
    """A training's batches, replaced by their attacked copies where its recipe says `adversarial`."""
    recipe = training.config.recipe
    if not recipe.adversarial:
        return batches
    attack = training_attack(recipe.adversarial, recipe.adv_eps)
    capsules = training.record.spec.capsules
    return AdversarialBatches(batches, training.model, training.preprocess, attack, capsules, training.config.seed)


def robust_validation(training) -> float | None:
    """Adversarial training, after each epoch: the validation accuracy under PGD at the training's eps (else None)."""
    from cnnlab.data import Batches
    from cnnlab.data.batches import evaluation_batch

    recipe, valid = training.config.recipe, training.valid_set
    if not recipe.adversarial:
        return None
    part = valid.subset(torch.arange(min(ROBUST_CHECK_IMAGES, len(valid))))
    batches = Batches(
        part,
        evaluation_batch(training.data.shape),
        training.preprocess,
        training.config.device,
        channels_last=training.channels_last,
    )
    attack, capsules = robust_check(recipe.adv_eps), training.record.spec.capsules
    return robust_accuracy(training.model, batches, training.preprocess, attack, capsules, seed=training.config.seed)
