"""Stopping and starting again: resuming from the commit point, and what a stopped run says it keeps.

    first_epoch = resume_training(training, log)     # after Ctrl-C, a crash or divergence: from the last finished epoch

The commit point is last.safetensors (weights, optimizer, best weights and the record, renamed in at once); the
other files of the folder are views of it, rewritten from it on resume.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.training.checkpoint import load_training_state, read_metadata, read_state, save_state
from cnnlab.training.config import RunConfig
from cnnlab.training.record import DataInfo, RunRecord, Status


def committed_record(folder) -> RunRecord:
    """The record as of the last committed epoch (in last.safetensors), else run.json: what resume starts from."""
    path = Path(folder) / "last.safetensors"
    saved = read_metadata(path).get("record") if path.is_file() else None
    return RunRecord.from_dict(saved, path) if saved else RunRecord.load(folder)


def resume_training(training, log) -> int:
    """Continue `training` (a `Training`, rebuilt from the run's config) from the commit point; returns the first
    epoch to run. The other files are rewritten from it: a crash may have come between its rename and theirs."""
    folder, record, epochs = training.folder, training.record, training.config.recipe.epochs
    path = folder / "last.safetensors"
    if not path.is_file():
        RunRecord.load(folder)  # not a run folder at all: say that first
        raise CnnlabError(f"{folder}: no last.safetensors to resume from (no epoch finished); train it again")
    previous = committed_record(folder)
    same_data(previous.data, record.data, folder)  # before the weights: a class count may differ
    done, best, _ = load_training_state(path, training.model, training.optimizer)
    if not 1 <= done <= epochs:
        raise CnnlabError(
            f"{path}: saved after epoch {done} of {epochs}: impossible, the file is damaged; restore it, or start "
            "the run again"
        )
    # a checkpoint from before the best weights travelled in it: they are in best.safetensors
    training.best_state = best if best is not None else read_state(folder / "best.safetensors")
    record.history, record.best = previous.history[:done], previous.best
    record.train_seconds, record.epochs_done = previous.train_seconds, done
    record.transfer = previous.transfer
    # the run reads images as it always has, whatever new runs are told today
    record.data.light_on_dark, record.data.drawing = previous.data.light_on_dark, previous.data.drawing
    training.preprocess = record.preprocess
    if training.world.main:
        save_state(folder / "best.safetensors", training.best_state)
        record.save(folder)
    log(f"resuming {folder} after epoch {done} of {epochs}")
    return done + 1


def same_data(trained: DataInfo, found: DataInfo, folder) -> None:
    """A resumed run must see the data it was trained on: its size, classes, shape and pixel statistics (the
    training split's mean and std, exact counts of every pixel value: different images give different ones)."""
    differences = [
        what
        for what, a, b in (
            ("data set", trained.name, found.name),
            ("classes", trained.classes, found.classes),
            ("image shape", trained.shape, found.shape),
            ("training images", trained.train_size, found.train_size),
            ("validation images", trained.valid_size, found.valid_size),
            ("test images", trained.test_size, found.test_size),
            ("pixel mean", trained.mean, found.mean),
            ("pixel std", trained.std, found.std),
        )
        if not close(a, b)
    ]
    if differences:
        raise CnnlabError(
            f"{folder} was trained on other data than {found.source} ({', '.join(differences)} "
            f"differ): point --data-root at the data it was trained on ({trained.source})"
        )


def close(a, b) -> bool:
    """Equal, floats to 1e-9: the statistics are recomputed on resume, by the same exact counts."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def finished(done: int) -> str:
    """'epoch 1 is' or 'epochs 1-5 are', for messages about what a stopped run keeps."""
    return "epoch 1 is" if done == 1 else f"epochs 1-{done} are"


def interrupted(training, log) -> bool:
    """After Ctrl-C: save what finished epochs made, and say exactly what can be done next; returns whether an
    epoch was saved (whether --resume can continue it)."""
    from cnnlab.training.report import write_training_figures

    done, folder = training.record.epochs_done, training.folder
    if not training.world.main:
        return bool(done)
    if not done:
        log("\ninterrupted during epoch 1: no epoch finished, so nothing was saved; start it again the same way")
        return False
    training.record.status = Status.INTERRUPTED
    training.record.save(folder)
    write_training_figures(training)
    again = resume_command(folder, training.config)
    log(f"\ninterrupted during epoch {done + 1}: {finished(done)} saved in {folder}\ncontinue with: {again}")
    return True


def resume_command(folder, config: RunConfig) -> str:
    """The command that continues this run: the folder holds everything else, the data's place included (given
    again, so that the line also works where the default data folders differ). An own network's class comes from
    the caller again."""
    data = ["--data-root", config.data_root] if config.data_root else []
    command = shlex.join(["cnnlab", "train", "--resume", str(folder), *data])
    if config.custom:
        return f"cnnlab.resume({str(folder)!r}, model={config.model}), or {command} FILE.py:{config.model}"
    return command
