"""Fool a trained model: its accuracy under attack for each eps, and the adversarial images themselves.

    report = robustness(run, "pgd", eps=[0, 0.05, 0.1], steps=40)   # run: cnnlab.load(...), a Predictor or a module
    report.results          # [{"eps": 0.0, "accuracy": 0.99, ...}, {"eps": 0.05, ...}, ...]
    adversarial(run, pixels, labels, "fgsm", 0.1)                   # one batch: the images and what the model says

The attacks themselves (FGSM, PGD in L-inf and L2, targeted) are in `cnnlab.training.adversarial`, which adversarial
training uses too. Here they meet a trained model: its preprocessing (attacks work in pixel units 0..1), its class
scores (CapsNet's capsule lengths too) and its test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cnnlab.errors import CnnlabError, within
from cnnlab.inspect.attributions import class_index
from cnnlab.predict import Predictor, as_predictor
from cnnlab.training.adversarial import ATTACKS, Attack, InPixels, per_image_loss, perturb

LIKELY_WRONG = "likely-wrong"  # target: each image's most likely wrong class, on the clean image
BATCH = 256
GALLERY = 6  # images in the report's gallery


@dataclass
class Adversarial:
    """One batch attacked: the images (float pixels 0..1) before and after, and the model's answers."""

    clean: torch.Tensor  # [N, C, H, W]
    images: torch.Tensor  # the adversarial copies
    labels: torch.Tensor
    clean_scores: torch.Tensor  # [N, classes]: probabilities (capsule lengths for CapsNet)
    scores: torch.Tensor
    loss: torch.Tensor  # per image, of the true label, after the attack
    target: torch.Tensor | None

    @property
    def perturbation(self) -> torch.Tensor:
        return self.images - self.clean

    @property
    def predictions(self) -> torch.Tensor:
        return self.scores.argmax(1)

    @property
    def clean_predictions(self) -> torch.Tensor:
        return self.clean_scores.argmax(1)


@dataclass
class Report:
    """A model's accuracy under one attack for each eps, with a few attacked images to show."""

    run: str
    attack: dict  # method, steps, step size, random start, target, seed
    images: int  # how many test images were attacked
    classes: list[str]
    results: list[dict] = field(default_factory=list)  # per eps: eps, accuracy, loss, (target_rate)
    gallery: list[dict] = field(default_factory=list)  # per eps, a few images (for the figure)

    @property
    def figure(self):
        """Accuracy against eps beside a gallery of clean / perturbation / adversarial images."""
        from cnnlab.plots.attack import attack_figure

        steps = f"-{self.attack['steps']}" if self.attack["method"] != "fgsm" else ""
        return attack_figure(self.results, self.gallery, self.classes, f"{self.run}: {self.attack['method']}{steps}")

    def to_dict(self) -> dict:
        return {"run": self.run, "attack": self.attack, "images": self.images, "results": self.results}

    def lines(self) -> list[str]:
        targeted = "target_rate" in self.results[0]
        out = [f"{'eps':>8} {'accuracy':>9}" + (f" {'on target':>9}" if targeted else "")]
        for r in self.results:
            out.append(
                f"{r['eps']:>8.4g} {100 * r['accuracy']:>8.2f}%"
                + (f" {100 * r['target_rate']:>8.2f}%" if targeted else "")
            )
        return out


def pixel_model(predictor: Predictor) -> InPixels:
    """The predictor's model taking pixels 0..1 (its normalization inside)."""
    return InPixels(predictor.model.eval(), predictor.preprocess.mean, predictor.preprocess.std)


def as_pixels(predictor: Predictor, images) -> torch.Tensor:
    """Images in any form Predictor takes -> float pixels 0..1 [N, C, H, W]."""
    return predictor.preprocess.denormalize(predictor.inputs(images)).clamp(0, 1)


def scores_of(predictor: Predictor, model: InPixels, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        scores = model(pixels).float()
    return scores if predictor.capsules else scores.softmax(1)


def resolve_target(target, predictor: Predictor, clean_scores: torch.Tensor, labels: torch.Tensor):
    """None (untargeted), LIKELY_WRONG (each image's most likely class other than its label) or one class."""
    if target is None:
        return None
    if target == LIKELY_WRONG:
        return clean_scores.scatter(1, labels[:, None], -np.inf).argmax(1)
    index = class_index(target, predictor.classes, clean_scores.shape[1])
    return torch.full_like(labels, index)


def adversarial(
    model_or_run,
    images,
    labels,
    method: str = "pgd",
    eps: float = 0.1,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool | None = None,
    target=None,
    seed: int = 0,
) -> Adversarial:
    """One batch attacked. `images` as Predictor takes them (files, uint8 pixels, ...); `labels` the classes to
    move away from (e.g. the true ones, or the predicted ones); `target` None, LIKELY_WRONG or a class."""
    predictor = as_predictor(model_or_run)
    attack = Attack(method, eps, steps, step_size, random_start)
    model = pixel_model(predictor)
    clean = as_pixels(predictor, images)
    labels = torch.as_tensor(labels, dtype=torch.long).view(-1)
    if len(labels) != len(clean):
        raise CnnlabError(f"{len(clean)} images but {len(labels)} labels: give one label per image")
    clean_scores = scores_of(predictor, model, clean)
    aim = resolve_target(target, predictor, clean_scores, labels)
    generator = torch.Generator().manual_seed(seed)
    with frozen(predictor.model):
        adv = perturb(model, clean, labels, attack, aim, predictor.capsules, generator)
    with torch.no_grad():
        raw = model(adv).float()
    scores = raw if predictor.capsules else raw.softmax(1)
    return Adversarial(clean, adv, labels, clean_scores, scores, per_image_loss(raw, labels, predictor.capsules), aim)


class frozen:
    """The weights need no gradient while an image is attacked: autograd then skips their backward entirely."""

    def __init__(self, model: torch.nn.Module):
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *_):
        for p in self.params:
            p.requires_grad_(True)


def robustness(
    model_or_run,
    method: str = "pgd",
    eps=(0.0, 0.02, 0.05, 0.1, 0.2),
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool | None = None,
    target=None,
    limit: int | None = None,
    seed: int = 0,
    data_root=None,
    images=None,
    labels=None,
    progress: bool = True,
) -> Report:
    """Accuracy on the run's test split (or on `images`, `labels`) under the attack, for each eps; eps 0 is the
    clean accuracy. `limit`: only the first that many test images."""
    predictor = as_predictor(model_or_run)
    eps = sorted({within(e, "eps", 0, 1000, "0 or more, in pixel units 0..1") for e in eps})
    Attack(method, max(eps), steps, step_size, random_start)  # a bad setting is refused before the data
    if images is None:
        test = predictor.split("test", data_root)
        n = len(test) if limit is None else min(limit, len(test))
        images, labels = test.pixels(slice(0, n)), test.labels[:n]
    labels = torch.as_tensor(labels)
    attack = {
        "method": method,
        "description": ATTACKS[method],
        "steps": steps if method != "fgsm" else 1,
        "step_size": step_size,
        "random_start": random_start,
        "target": target,
        "seed": seed,
    }
    classes = predictor.classes or [str(i) for i in range(predictor.scores(images[:1]).shape[1])]
    report = Report(predictor.name, attack, len(labels), classes)
    from tqdm import tqdm

    bar = tqdm(total=len(eps) * len(labels), desc=method, unit="image", leave=False, disable=None if progress else True)
    for e in eps:
        correct = on_target = aimed = 0
        loss_sum, shown = 0.0, None
        for begin in range(0, len(labels), BATCH):
            batch = (
                adversarial(
                    predictor,
                    images[begin : begin + BATCH],
                    labels[begin : begin + BATCH],
                    method,
                    e,
                    steps,
                    step_size,
                    random_start,
                    target,
                    seed + begin,
                )
                if e > 0
                else clean_batch(predictor, images[begin : begin + BATCH], labels[begin : begin + BATCH])
            )
            correct += int((batch.predictions == batch.labels).sum())
            loss_sum += float(batch.loss.sum())
            if batch.target is not None:
                mask = batch.target != batch.labels
                on_target += int((batch.predictions == batch.target)[mask].sum())
                aimed += int(mask.sum())
            shown = shown or gallery_entry(batch, e)
            bar.update(len(batch.labels))
        result = {"eps": e, "accuracy": correct / len(labels), "loss": loss_sum / len(labels)}
        if target is not None:
            result["target_rate"] = on_target / max(1, aimed)
        report.results.append(result)
        report.gallery.append(shown)
    bar.close()
    return report


def clean_note(report: Report, record, weights: str = "best") -> str | None:
    """Why eps 0 may differ from the test accuracy the run reported: attacks run in fp32 (bf16 rounding would blunt
    their gradients), the run's figure came from bf16 autocast where the hardware is fast at it; a few test images
    near a tie between two classes then land on different sides (an adversarially trained MNIST run: 99.15% at
    eps 0 against 99.16% in its run.json)."""
    clean = next((r["accuracy"] for r in report.results if r["eps"] == 0), None)
    test = record and (record.test if weights == "best" else record.last_epoch_test)
    if clean is None or test is None or report.images != record.data.test_size:
        return None  # no clean row, no recorded figure, or not the whole test set (--limit)
    if round(clean * report.images) == round(test.accuracy * report.images):
        return None
    how = f"with {record.model.precision} autocast" if record.model.precision != "fp32" else "in fp32 too"
    return (
        f"eps 0 is the clean accuracy in fp32, as the attacks run; the run's own test accuracy, "
        f"{100 * test.accuracy:.2f}% (run.json), was measured {how}: images near a tie may flip"
    )


def clean_batch(predictor: Predictor, images, labels) -> Adversarial:
    model = pixel_model(predictor)
    clean = as_pixels(predictor, images)
    labels = torch.as_tensor(labels, dtype=torch.long)
    with torch.no_grad():
        raw = model(clean).float()
    scores = raw if predictor.capsules else raw.softmax(1)
    return Adversarial(clean, clean, labels, scores, scores, per_image_loss(raw, labels, predictor.capsules), None)


def gallery_entry(batch: Adversarial, eps: float) -> dict:
    """The first few images of a batch, as the figure draws them: uint8 pixels and the answers."""
    k = min(GALLERY, len(batch.labels))
    as_uint8 = lambda t: (t[:k] * 255).round().clamp(0, 255).to(torch.uint8).numpy()  # noqa: E731
    return {
        "eps": eps,
        "clean": as_uint8(batch.clean),
        "adversarial": as_uint8(batch.images),
        "perturbation": batch.perturbation[:k].numpy(),
        "labels": batch.labels[:k].tolist(),
        "clean_predictions": batch.clean_predictions[:k].tolist(),
        "predictions": batch.predictions[:k].tolist(),
        "confidence": batch.scores[:k].max(1).values.tolist(),
    }
