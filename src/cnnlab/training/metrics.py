"""Loss and accuracy, overall and per class, and the confusion matrix, computed in eval() mode."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def autocast(device, precision: str):
    """bf16 autocast where it pays (GPUs, and CPUs with AMX/AVX512-BF16); a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_precision(precision: str, device) -> str:
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        fast_bf16 = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    except AttributeError:
        fast_bf16 = False
    return "bf16" if fast_bf16 else "fp32"


def loss_and_scores(model, x, y, label_smoothing: float = 0.0):
    """The model's own loss if it has one (CapsNet), else cross-entropy on its logits."""
    if hasattr(model, "loss"):
        return model.loss(x, y)
    scores = model(x)
    return F.cross_entropy(scores.float(), y, label_smoothing=label_smoothing), scores


@dataclass
class Evaluation:
    loss: float
    confusion: torch.Tensor  # [true, predicted] counts
    predictions: torch.Tensor  # predicted class of every sample, in order

    @property
    def correct(self) -> int:
        return int(self.confusion.diag().sum())

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.total)

    def per_class(self) -> list[tuple[int, int]]:
        """(correct, total) for each true class."""
        return list(zip(self.confusion.diag().tolist(), self.confusion.sum(1).tolist()))


@torch.no_grad()
def evaluate(model, batches, num_classes: int, precision: str = "fp32", label_smoothing: float = 0.0) -> Evaluation:
    """The loss is the training's criterion (`label_smoothing` as the recipe's), as the lesson measures it: on the
    same scale as the training loss, and lowest where the model generalizes best."""
    was_training = model.training
    model.eval()
    loss_sum, confusion, predictions = 0.0, torch.zeros(num_classes, num_classes, dtype=torch.long), []
    with autocast(batches.device, precision):
        for x, y in batches:
            loss, scores = loss_and_scores(model, x, y, label_smoothing)
            loss_sum += float(loss) * len(y)
            pred = scores.argmax(1)
            predictions.append(pred.cpu())
            confusion += torch.bincount((y * num_classes + pred).cpu(), minlength=num_classes**2).view(
                num_classes, num_classes
            )
    model.train(was_training)
    return Evaluation(loss_sum / max(1, int(confusion.sum())), confusion, torch.cat(predictions))


def evaluate_images(
    model,
    images,
    preprocess,
    num_classes: int,
    precision: str,
    label_smoothing: float = 0.0,
    device="cpu",
    augment=None,
    seed: int = 0,
) -> Evaluation:
    """The one evaluation of a set of images, wherever a test figure comes from (the training's report, `cnnlab
    evaluate`, the explorer): the same batches, layout and precision give the same figures to the last digit."""
    from cnnlab.data import Batches
    from cnnlab.data.batches import evaluation_batch

    channels_last = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())  # as training lays them out
    batches = Batches(
        images,
        evaluation_batch(preprocess.shape),
        preprocess,
        device,
        augment=augment,
        seed=seed,
        channels_last=channels_last,
    )
    return evaluate(model, batches, num_classes, precision, label_smoothing)


def lesson_table(evaluation: Evaluation, classes: list[str], title: str = "Test") -> str:
    """The lesson notebook's report: loss, then accuracy per class, then overall."""
    width = max(len(c) for c in classes)
    lines = [f"{title} loss: {evaluation.loss:.6f}", ""]
    for name, (correct, total) in zip(classes, evaluation.per_class()):
        pct = f"{100 * correct / total:6.2f}%" if total else "   n/a "
        lines.append(f"{title} accuracy of {name:>{width}}: {pct} ({correct:5d}/{total:5d})")
    lines += [
        "",
        f"{title} accuracy (overall): {100 * evaluation.accuracy:.2f}% ({evaluation.correct}/{evaluation.total})",
    ]
    return "\n".join(lines)
