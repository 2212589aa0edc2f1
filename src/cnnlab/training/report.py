"""The end of a training: the test of the kept weights, the lesson's table, a warning when nothing was learned, and
the figures (curves.png, confusion.png, samples.png, reconstructions.png for capsules).

`train_note`, the few words on why train and validation figures differ, is the curves' caption here and in the
explorer's live view.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models import Recipe
from cnnlab.training.metrics import Evaluation, lesson_table
from cnnlab.training.record import LastEpochTest, RunRecord, Status, TestResult


def finish(training, log=print) -> None:
    """Test the best weights (not merely the last ones), and the last ones beside them when they differ; then
    write the report and the figures. `training`: a `Training` whose epochs are done."""
    record, data = training.record, training.data
    last, best = record.history[-1].epoch, record.best.epoch
    last_weights_test = training.evaluate(data.test) if last != best else None
    training.model.load_state_dict(training.best_state)  # what best.safetensors holds, in every process's memory
    test = training.evaluate(data.test)
    last_test = test if last_weights_test is None else last_weights_test
    record.last_epoch_test = LastEpochTest(last, last_test.loss, last_test.accuracy)
    if not training.world.main:
        return
    record.status = Status.FINISHED
    record.test = TestResult(test.loss, test.accuracy, [list(p) for p in test.per_class()], test.confusion.tolist())
    record.save(training.folder)
    log(lesson_table(test, data.classes))
    if last != best:
        log(
            f"(the weights of epoch {best}, the lowest validation loss, were tested; the last epoch's, {last}, give "
            f"{100 * last_test.accuracy:.2f}%)"
        )
    warning = no_better_than_guessing(test.accuracy, data.test.labels, data.classes)
    if warning:
        log(warning)
    write_training_figures(training, test)


def no_better_than_guessing(accuracy: float, labels: torch.Tensor, classes: list[str]) -> str | None:
    """A warning when the model does no better than always answering the most common class (plus a margin of
    a tenth of the way to 100%): it learned nothing, and the user should hear it and what to try."""
    counts = torch.bincount(labels, minlength=len(classes))
    common = int(counts.argmax())
    guessing = float(counts[common]) / max(1, len(labels))
    if accuracy > guessing + 0.1 * (1 - guessing):
        return None
    return (
        f"warning: test accuracy {100 * accuracy:.2f}% is no better than always answering "
        f"{classes[common]!r} ({100 * guessing:.2f}%): the model learned nothing useful. Try a smaller learning "
        "rate (--lr), a smaller model, more epochs, or pretrained weights (--weights FILE.pth)"
    )


def train_note(model: nn.Module, recipe: Recipe) -> str:
    """Why train loss and accuracy are not comparable to validation's, in a few words (empty if they are)."""
    notes = []
    dropout = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    # the recipe's dropout is the run's, also where the model was rebuilt with its default rate (the explorer)
    if dropout and (recipe.dropout > 0 if recipe.dropout is not None else any(m.p > 0 for m in dropout)):
        notes.append("dropout on")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        notes.append("batch norm on batch statistics")
    if recipe.augment:
        notes.append("augmented images")
    return "; ".join(notes)


def sample_indices(
    predictions: torch.Tensor, labels: torch.Tensor, count: int = 32, mistakes: int = 8
) -> tuple[torch.Tensor, int]:
    """Which test images samples.png shows: the first ones, then up to `mistakes` wrong ones from the whole test
    set (the first images of a good model are almost all right); no image twice. Returns (indices, mistakes)."""
    wrong = (predictions != labels).nonzero().flatten()[:mistakes]
    others = torch.ones(len(labels), dtype=torch.bool)
    others[wrong] = False
    first = others.nonzero().flatten()[: count - len(wrong)]
    return torch.cat([first, wrong]), len(wrong)


def write_training_figures(training, test: Evaluation | None = None) -> None:
    """curves.png always; with the test's result, the confusion matrix and sample predictions too."""
    from cnnlab.plots import confusion_matrix, reconstructions, sample_grid, save

    folder, data = training.folder, training.data
    save(curves(training.record, training.model), folder / "curves.png")
    if test is None:
        return
    save(confusion_matrix(test.confusion, data.classes), folder / "confusion.png")
    labels = data.test.labels
    shown, n_wrong = sample_indices(test.predictions, labels)
    grid = sample_grid(data.test.pixels(shown), labels[shown], test.predictions[shown], data.classes, n_wrong=n_wrong)
    save(grid, folder / "samples.png")
    if training.record.contract.capsules:  # what the decoder makes of the capsules
        first = data.test.subset(torch.arange(min(16, len(labels))))
        x = next(iter(training.batches(first, batch_size=16)))[0]
        recon = (training.model.eval().reconstruct(x).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        save(reconstructions(data.test.pixels(slice(0, len(recon))), recon), folder / "reconstructions.png")


def curves(record: RunRecord, model: nn.Module):
    """The run's loss and accuracy per epoch, best epoch marked, with a word on how train was measured."""
    from cnnlab.plots import training_curves

    best = record.best.epoch if record.best else None
    return training_curves([e.__dict__ for e in record.history], best, train_note(model, record.config.recipe))
