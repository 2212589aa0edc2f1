"""The training loop: one recipe, validation every epoch, the best weights kept, resumable at any epoch.

    training = train(make_config("mlp", "mnist"), "runs/mlp")

Everything the run makes goes into its folder: best.safetensors, last.safetensors, run.json, metrics.csv and the
figures. Ctrl-C loses at most the epoch in progress; `resume=True` continues from the last finished one and ends
with exactly the weights an uninterrupted run would have.

Its parts: assemble.py builds the `Training` from the config, epochs.py trains one epoch, report.py ends the run,
resume.py starts it again. Adversarial training hooks in through adversarial.py (`attacked_batches`,
`robust_validation`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

from cnnlab.data import Batches, Dataset
from cnnlab.data.augment import augment_for
from cnnlab.training.adversarial import attacked_batches, robust_validation
from cnnlab.training.assemble import Training
from cnnlab.training.checkpoint import save_state, save_training_state
from cnnlab.training.config import RunConfig
from cnnlab.training.distributed import agree, join, leave, lost_peer
from cnnlab.training.epochs import Diverged, diverged, train_epoch
from cnnlab.training.folder import owned, prepare_new_run
from cnnlab.training.record import Best, Epoch, Status
from cnnlab.training.report import finish
from cnnlab.training.resume import committed_record, interrupted, resume_training


def train(
    config: RunConfig,
    folder,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    data: Dataset | None = None,
    on_epoch_end: Callable[[int, Training], bool] | None = None,
    log: Callable[[str], None] = print,
    model=None,
) -> Training:
    """Train (or resume) a run in `folder`. `on_epoch_end(epoch, training)` may return True to stop early. A
    folder that holds a run already is refused unless `overwrite`; another process training into it, always.
    Started by torchrun, each process trains its share (see distributed.py); rank 0 alone writes and logs.
    `model`: the caller's own nn.Module class or instance when `config.custom`."""
    world, device = join(config.device)
    if not world.main:
        progress, log = False, (lambda line: None)
    training, ended_well = None, False
    try:
        own = committed_record(folder).model.own if resume and config.custom else None
        training = Training(
            dataclasses.replace(config, device=device),
            folder,
            data,
            fresh=not resume,
            world=world,
            model=model,
            own=own,
            progress=progress,
            log=log,
        )
        with contextlib.ExitStack() as held:
            refusal, claim = None, None
            if world.main:  # one owner: rank 0 holds the lock for all
                try:
                    claim = held.enter_context(owned(training.folder))
                    if not resume:
                        prepare_new_run(training.folder, overwrite)
                        training.record.save(training.folder)  # the explorer lists the run from its first second
                        claim.started = True
                except Exception as error:
                    refusal = error
            training.folder = Path(agree(world, training.folder, refusal))
            first_epoch = resume_training(training, log) if resume else 1
            run_epochs(training, first_epoch, progress, on_epoch_end, log)
        ended_well = True
    finally:
        if training is not None and world.distributed:
            training.loss = training.loss.module  # DDP holds the process group: let it go now, not at exit
        leave(world, together=ended_well)
    return training


def run_epochs(training: Training, first_epoch: int, progress: bool, on_epoch_end, log) -> None:
    """The epochs from `first_epoch` on, then the test; Ctrl-C and divergence leave a resumable folder."""
    config, record = training.config, training.record
    recipe = config.recipe
    augment = augment_for(recipe.augment, training.preprocess)
    train_batches = attacked_batches(training, training.batches(training.train_set, shuffle=True, augment=augment))
    d = record.data
    processes = f", {training.world.size} processes" if training.world.distributed else ""
    log(
        f"{config.model} ({record.model.parameters:,} parameters) on {d.name} from {d.source}: "
        f"{d.train_size:,} train / {d.valid_size:,} valid / {d.test_size:,} test, {recipe.describe()}, "
        f"{training.precision}{processes}"
    )
    for note in (training.weights_note, training.batch_note):
        if note:
            log(note)
    try:
        for epoch in range(first_epoch, recipe.epochs + 1):
            log(run_epoch(training, train_batches, epoch, progress))
            if on_epoch_end is not None and on_epoch_end(epoch, training):
                break
        finish(training, log)
    except KeyboardInterrupt as stop:
        stop.saved = interrupted(training, log)  # the command line then says how to start again if nothing was
        raise
    except Diverged:
        if record.epochs_done and training.world.main:
            record.status = Status.DIVERGED
            record.save(training.folder)
        raise
    except RuntimeError as error:  # a collective failed: another process died
        if training.world.distributed:
            raise lost_peer(error, training.folder) from None
        raise


def run_epoch(training: Training, train_batches: Batches, epoch: int, progress: bool) -> str:
    """Train and validate one epoch, keep the weights if they are the best so far, and commit the epoch; returns
    its log line."""
    record, t0 = training.record, time.perf_counter()
    train_loss, train_acc, lr = train_epoch(training, train_batches, epoch, progress)
    valid = training.evaluate(training.valid_set)
    if not math.isfinite(valid.loss):
        raise diverged(training, epoch, "on the validation images the loss")
    robust = robust_validation(training)
    seconds = time.perf_counter() - t0
    record.history.append(Epoch(epoch, train_loss, train_acc, valid.loss, valid.accuracy, lr, seconds, robust))
    improved = record.best is None or valid.loss < record.best.valid_loss
    if improved:
        training.best_state = {k: v.detach().to("cpu", copy=True) for k, v in training.model.state_dict().items()}
        record.best = Best(epoch, valid.loss, valid.accuracy)
    record.train_seconds += seconds
    record.epochs_done = epoch
    if training.world.main:
        # the commit point: one atomic rename; best.safetensors, run.json and metrics.csv are views of it
        folder = training.folder
        save_training_state(
            folder / "last.safetensors",
            training.model,
            training.optimizer,
            epoch,
            training.best_state,
            record.to_dict(),
        )
        if improved:
            save_state(folder / "best.safetensors", training.best_state)
        record.save(folder)
    return (
        f"epoch {epoch:3d}/{training.config.recipe.epochs}  train loss {train_loss:.4f} acc {100 * train_acc:5.2f}%  "
        f"valid loss {valid.loss:.4f} acc {100 * valid.accuracy:5.2f}%"
        + (f" robust {100 * robust:5.2f}%" if robust is not None else "")
        + f"  {seconds:5.1f}s"
        + ("  * best, saved" if improved else "")
    )
