"""One epoch of training: every batch through the model and the optimizer, divergence caught where it happens.

train_loss, train_acc, lr = train_epoch(training, batches, epoch, progress=False)
"""

from __future__ import annotations

import torch

from cnnlab.data import Batches
from cnnlab.errors import CnnlabError
from cnnlab.training.assemble import Training
from cnnlab.training.distributed import smallest, total
from cnnlab.training.metrics import autocast
from cnnlab.training.optimizer import Lookahead, set_lr
from cnnlab.training.resume import finished


class Diverged(CnnlabError):
    """The loss or the weights stopped being numbers: the run cannot go on, and says what to try."""


def diverged(training: Training, epoch: int, what: str) -> Diverged:
    lr, done = training.config.recipe.lr, training.record.epochs_done
    kept = f"{finished(done)} kept in {training.folder}" if done else "no epoch finished, so nothing is kept"
    return Diverged(
        f"epoch {epoch}: {what} became inf or nan: training diverged; try a lower learning rate, e.g. "
        f"--lr {lr / 10:.3g} (this run's is {lr:g}); {kept}"
    )


def train_epoch(training: Training, batches: Batches, epoch: int, progress: bool) -> tuple[float, float, float]:
    """One pass over the training batches; returns (mean loss, accuracy, last learning rate)."""
    from tqdm import tqdm

    recipe, model, optimizer, world = training.config.recipe, training.model, training.optimizer, training.world
    device = training.config.device
    steps_per_epoch, total_steps = len(batches), len(batches) * recipe.epochs
    model.train()
    batches.set_epoch(epoch)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    first_bad = torch.tensor(steps_per_epoch, device=device)  # the first step whose loss is not finite
    lr = recipe.lr
    lookahead = Lookahead(model) if recipe.lookahead else None
    # disable=None: no bar when stderr is not a terminal (a log file would get hundreds of updates per epoch)
    bar = tqdm(
        batches, desc=f"epoch {epoch}/{recipe.epochs}", leave=False, disable=None if progress else True, unit="batch"
    )
    for i, (x, y) in enumerate(bar):
        step = (epoch - 1) * steps_per_epoch + i  # 0-based, over the whole run
        lr = recipe.lr_at(step, total_steps, steps_per_epoch)
        set_lr(optimizer, lr)
        with autocast(device, training.precision):
            loss, scores = training.loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        if world.distributed:  # DDP averages over processes: weigh each by its share of the batch
            (loss * (len(y) * world.size / batches.global_batch(i))).backward()
        else:
            loss.backward()
        optimizer.step()
        if lookahead:
            lookahead.step(step + 1, total_steps, i == steps_per_epoch - 1)  # counts the steps taken
        loss_sum += loss.detach() * len(y)
        first_bad = torch.minimum(first_bad, torch.where(loss.detach().isfinite(), steps_per_epoch, i))  # no sync
        correct += (scores.argmax(1) == y).sum()
        if progress and i % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
    loss_sum, correct, first_bad = *total(world, loss_sum, correct), smallest(world, first_bad)
    seen = len(batches.labels)
    if int(first_bad) < steps_per_epoch:
        raise diverged(training, epoch, f"at step {int(first_bad) + 1} of {steps_per_epoch} the training loss")
    if not all(p.isfinite().all() for p in model.parameters()):
        raise diverged(training, epoch, "by its end the weights")
    return float(loss_sum) / seen, int(correct) / seen, lr
