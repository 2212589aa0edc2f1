"""Endpoints of the training monitor: the runs and their state, a run's curves, its confusion matrix on the test split
with the images of any cell (highest loss first), and several runs compared on one chart.

A run that is still training writes its run.json at every epoch's commit point (training/loop.py, `run_epoch`).
The page polls `GET /monitor/stamps`, which only looks at file times and locks, every two seconds, and fetches a
run's record again when its stamp changes: a new epoch shows within a few seconds without reading any run.json
in between.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from cnnlab.errors import CnnlabError, within
from cnnlab.inspect.interpret import interpret
from cnnlab.plots.training import wide_range
from cnnlab.serve.payloads import bounds, pixels_data_url
from cnnlab.serve.store import NotFound, RunStore, get_store
from cnnlab.training.folder import is_training, locked_inodes
from cnnlab.training.record import RunRecord, compare_table
from cnnlab.training.report import train_note

router = APIRouter(prefix="/monitor", tags=["monitor"])

METRICS = ("valid_acc", "valid_loss", "train_acc", "train_loss")


# ---------------------------------------------------------------- the runs and their state


def run_state(record: RunRecord, training: bool | None, folder: Path) -> tuple[str, str]:
    """(finished | training | stopped, why it stopped and what to do), from the record's status and the lock."""
    resume = f"continue with: cnnlab train --resume {folder}"
    if record.status == "finished":
        return "finished", ""
    if record.status == "running" and training is not False:
        return "training", ""
    if record.status == "diverged":
        return "stopped", "the loss diverged; train again with a lower --lr"
    if record.status == "interrupted":
        return "stopped", f"interrupted; {resume}"
    return "stopped", f"its process ended during epoch {record.epochs_done + 1}; {resume}"


def run_summary(store: RunStore, name: str, record: RunRecord, inodes: set[int] | None) -> dict:
    """One row of the runs table."""
    folder = store.folder(name)
    state, detail = run_state(record, is_training(folder, inodes), folder)
    return {
        "name": name,
        "model": record.model.name,
        "parameters": record.model.parameters,
        "dataset": record.data.name,
        "epochs_done": record.epochs_done,
        "epochs_planned": record.config.recipe.epochs,
        "best_epoch": record.best.epoch if record.best else None,
        "best_valid_acc": record.best.valid_acc if record.best else None,
        "test_accuracy": record.test.accuracy if record.test else None,
        "state": state,
        "detail": detail,
        "corrupt": record.config.corrupt,
    }  # memorization runs (--corrupt): marked in the table


@router.get("/runs")
def runs(store: RunStore = Depends(get_store)) -> list[dict]:
    """Every run under RUNS_DIR, newest first: model, data set, epochs done of planned, best epoch, test accuracy,
    and its state (finished, training, or stopped with what to do). A run whose run.json cannot be read is listed
    with the one-line reason instead."""
    inodes = locked_inodes()
    rows, broken = [], []
    for name in store.names():
        try:
            rows.append(run_summary(store, name, store.record(name), inodes))
        except NotFound:
            continue  # deleted between the listing and the reading
        except CnnlabError as error:
            broken.append({"name": name, "error": str(error)})
    return rows + broken  # the first row is the newest run that can be shown


@router.get("/stamps")
def stamps(store: RunStore = Depends(get_store)) -> dict[str, str]:
    """Cheap to poll: for each run, a stamp that changes when its run.json is rewritten (every finished epoch) or
    its training process starts or ends. No file is read; the page fetches a run again when its stamp changes."""
    inodes = locked_inodes()
    found = {}
    for name in store.names():
        folder = store.root / name
        try:
            found[name] = f"{(folder / 'run.json').stat().st_mtime_ns}:{is_training(folder, inodes)}"
        except FileNotFoundError:
            continue
    return found


# ---------------------------------------------------------------- one run's curves


_train_notes: dict[tuple, str] = {}


def train_note_of(store: RunStore, name: str, record: RunRecord) -> str:
    """How train loss and accuracy were measured, when not as validation's (dropout, augmentation...); kept per run.
    Empty until the run has weights (the note looks at the model's layers)."""
    key = (store.root / name, repr(record.model), repr(record.config.recipe))
    if key not in _train_notes:
        try:
            with store.predictor(name) as predictor:
                _train_notes[key] = train_note(predictor.model, record.config.recipe)
        except CnnlabError:
            return ""
    return _train_notes[key]


@router.get("/runs/{name}/curves")
def curves(name: str, store: RunStore = Depends(get_store)) -> dict:
    """The run's history (loss and accuracy, train and validation, per epoch, as in run.json), its best epoch, and
    whether the loss axis is drawn on a log scale (it spans more than 30x, as in curves.png)."""
    record = store.record(name)
    summary = run_summary(store, name, record, locked_inodes())
    history = [dataclasses.asdict(epoch) for epoch in record.history]
    losses = [e[key] for e in history for key in ("train_loss", "valid_loss")]
    return {
        "run": summary,
        "history": history,
        "best_epoch": summary["best_epoch"],
        "loss_log_scale": wide_range(losses),
        "train_note": train_note_of(store, name, record),
    }


# ---------------------------------------------------------------- the confusion matrix and its cells


@dataclass
class Ranked:
    """Every test image of one weights version, ranked as `cnnlab interpret` ranks them: highest loss first."""

    version: int  # best.safetensors' modification time: new weights, new ranking
    classes: list[str]
    confusion: np.ndarray  # [true, predicted] counts
    index: np.ndarray  # position in the test split
    loss: np.ndarray  # -log p(true class)
    actual: np.ndarray
    predicted: np.ndarray
    probability: np.ndarray  # of the predicted class


_ranked: dict[Path, Ranked] = {}  # by run folder
_ranking = threading.Lock()  # one ranking computed at a time: the CPU is shared with the other requests


def ranked(store: RunStore, name: str) -> Ranked:
    """The run's test split ranked by loss, computed once per weights version and kept."""
    folder = store.folder(name)
    weights = folder / "best.safetensors"
    version = weights.stat().st_mtime_ns if weights.is_file() else None
    if folder not in _ranked or _ranked[folder].version != version:
        with _ranking:
            if folder not in _ranked or _ranked[folder].version != version:  # not done meanwhile by another request
                _ranked[folder] = rank(store, name, version)
    return _ranked[folder]


def test_split(store: RunStore, name: str):
    """The run's test images, or one line saying why they cannot be read (the data set moved, say)."""
    try:
        return store.split(name, "test")
    except NotFound:
        raise
    except CnnlabError as error:
        raise CnnlabError(
            f"run {name!r}: its test images cannot be read: {str(error).splitlines()[0]} (see `cnnlab datasets`)"
        ) from None


def rank(store: RunStore, name: str, version: int | None) -> Ranked:
    """The matrix is the test the table shows: the run's own (run.json) once it is finished, else the one
    `cnnlab evaluate` makes (Predictor.evaluate); the images of a cell are those it counts there, ranked by loss."""
    test = test_split(store, name)  # before taking the predictor: split() takes it too
    record = store.record(name)
    with store.predictor(name) as predictor:
        found = interpret(predictor, "test", top=len(test), images=test)
        evaluation = predictor.evaluate("test")
    predicted = evaluation.predictions.numpy()[found.index]
    recorded = record.test is not None and record.status == "finished"
    confusion = np.array(record.test.confusion) if recorded else evaluation.confusion.numpy()
    return Ranked(
        version, found.classes, confusion, found.index, found.loss, found.actual, predicted, found.probability
    )


@router.get("/runs/{name}/confusion")
def confusion(name: str, store: RunStore = Depends(get_store)) -> dict:
    """The confusion matrix of the run's best weights on its test split: `counts[true][predicted]`, the same
    numbers as the runs table's test accuracy (the run's own test once it is finished; while it trains, the
    evaluation `cnnlab evaluate` makes), kept until its weights change."""
    found = ranked(store, name)
    correct = int(np.trace(found.confusion))
    return {
        "classes": found.classes,
        "counts": found.confusion.tolist(),
        "total": int(found.confusion.sum()),
        "accuracy": correct / max(1, int(found.confusion.sum())),
    }


@router.get("/runs/{name}/confusion/{true}/{predicted}")
def confusion_cell(
    name: str,
    true: int,
    predicted: int,
    limit: int = Query(48, description="most images returned, 1 to 500", json_schema_extra=bounds(1, 500)),
    store: RunStore = Depends(get_store),
) -> dict:
    """The test images of one cell (true class `true`, predicted `predicted`, as class numbers), highest loss
    first: off the diagonal, the model's most confident mistakes (fastai's top losses). Each with the probability
    of the predicted class and of the true one."""
    within(limit, "limit", 1, 500, "from 1 to 500")
    found = ranked(store, name)
    k = len(found.classes)
    for value, what in ((true, "true class"), (predicted, "predicted class")):
        if not 0 <= value < k:
            raise CnnlabError(f"{what} {value}: this run has classes 0 to {k - 1}")
    cell = np.flatnonzero((found.actual == true) & (found.predicted == predicted))  # keeps the ranking's order
    test = test_split(store, name)
    return {
        "true": found.classes[true],
        "predicted": found.classes[predicted],
        "count": len(cell),
        "images": [
            {
                "index": int(found.index[i]),
                "image": pixels_data_url(test.pixels(int(found.index[i]))),
                "probability": float(found.probability[i]),
                "true_probability": float(np.exp(-found.loss[i])),
                "loss": float(found.loss[i]),
            }
            for i in cell[:limit]
        ],
    }


# ---------------------------------------------------------------- runs compared


class CompareRequest(BaseModel):
    runs: list[str] = Field(description="run names, 1 to 12", json_schema_extra={"minItems": 1, "maxItems": 12})
    metric: str = Field(
        "valid_acc",
        description="valid_acc, valid_loss, train_acc or train_loss",
        json_schema_extra={"enum": list(METRICS)},
    )


@router.post("/compare")
def compare(request: CompareRequest, store: RunStore = Depends(get_store)) -> dict:
    """Several runs on one chart: one series per run of `metric` by epoch, whether its axis is logarithmic, and the
    table `cnnlab compare` prints. A run that cannot be read is left out and listed in `skipped` with why."""
    if not 1 <= len(request.runs) <= 12:
        raise CnnlabError(f"{len(request.runs)} runs to compare: pick 1 to 12")
    if request.metric not in METRICS:
        raise CnnlabError(f"metric {request.metric!r}: use one of {', '.join(METRICS)}")
    names, records, skipped = [], [], []
    for name in request.runs:
        try:
            records.append(store.record(name))
            names.append(name)
        except CnnlabError as error:  # one broken or deleted run must not hide the others
            skipped.append({"run": name, "error": str(error).splitlines()[0]})
    if not records:
        raise CnnlabError("none of the runs can be compared: " + "; ".join(s["error"] for s in skipped))
    series = [
        {"run": name, "epochs": [e.epoch for e in r.history], "values": [getattr(e, request.metric) for e in r.history]}
        for name, r in zip(names, records)
    ]
    values = [v for s in series for v in s["values"]]
    return {
        "metric": request.metric,
        "series": series,
        "log_scale": request.metric.endswith("loss") and wide_range(values),
        "table": compare_table(names, records),
        "skipped": skipped,
    }
