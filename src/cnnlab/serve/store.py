"""The runs under one folder, as the server sees them: each is named by its folder's name (never by a path, so no
request can reach a file outside RUNS_DIR), opened once, and reopened when its weights change on disk."""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from pathlib import Path

from fastapi import Request
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.predict import Predictor
from cnnlab.training.record import RunRecord


class NotFound(CnnlabError):
    """A run (or anything else a request names) that is not there: a 404, not a 400."""


class RunStore:
    def __init__(self, root, models: dict | None = None, models_from: str = "", pretrained=()):
        self.root = Path(root).resolve()
        # learners' own networks, by class name: the only code runs of them are opened with (never the record's)
        self.models, self.models_from = dict(models or {}), models_from
        # networks with published weights and no run (`cnnlab serve --model resnet18 --weights imagenet`), by the
        # name the page lists them under; they have no folder, record or test split
        self.pretrained = {f"{p.weights.model}-{p.weights.source}": (p, threading.Lock()) for p in pretrained}
        self._open: dict[str, tuple[int, Predictor, threading.Lock]] = {}
        self._guard = threading.Lock()
        self._splits: dict[tuple[str, str], object] = {}

    def names(self) -> list[str]:
        """The run folders directly under the root (a folder with a run.json), newest first."""
        if not self.root.is_dir():
            return []
        runs = []
        for folder in self.root.iterdir():
            try:
                runs.append((-(folder / "run.json").stat().st_mtime, folder.name))
            except OSError:  # not a run, or deleted while we looked
                continue
        return [name for _, name in sorted(runs)]

    def folder(self, name: str) -> Path:
        # a name is looked up among the folders that are there, not joined to the root: "../x" is simply not one
        if name not in self.names():
            raise NotFound(f"no run named {name!r} under {self.root}")
        return self.root / name

    def record(self, name: str) -> RunRecord:
        if name in self.pretrained:
            raise CnnlabError(
                f"{name} is a network with published weights, not a run: it has no data set of its own; "
                "upload, film or drop a photo"
            )
        return RunRecord.load(self.folder(name))

    def pretrained_summary(self, name: str) -> dict:
        """What the run list says of a pretrained network: its model, data set, accuracy (the published top-1)."""
        predictor, _ = self.pretrained[name]
        weights = predictor.weights
        return dict(
            name=name,
            model=weights.model,
            dataset=weights.source,
            test_accuracy=weights.top1 / 100,
            input_shape=list(predictor.input_shape),
            classes=predictor.classes,
        )

    def label_smoothing(self, name: str) -> float:
        """The run's label smoothing (why its answers look less sure); published weights: none to report."""
        return 0.0 if name in self.pretrained else self.record(name).config.recipe.label_smoothing

    @contextmanager
    def predictor(self, name: str):
        """The run's Predictor, held for one request at a time (its layer hooks are not thread-safe)."""
        if name in self.pretrained:
            predictor, lock = self.pretrained[name]
            with lock:
                yield predictor
            return
        folder = self.folder(name)
        try:
            version = (folder / "best.safetensors").stat().st_mtime_ns
        except OSError:
            raise NotFound(
                f"run {name!r} has no best.safetensors (it has not finished an epoch, or was deleted)"
            ) from None
        with self._guard:
            opened = self._open.get(name)
            if opened is None or opened[0] != version:
                opened = (version, Predictor.from_run(folder, model=self.own_model(folder)), threading.Lock())
                self._open[name] = opened
        _, predictor, lock = opened
        with lock:
            yield predictor

    def own_model(self, folder: Path):
        """The class (or a copy of the instance) a run of a learner's own network opens with; None for registry
        models and for own networks whose code was not given (Predictor then says what to pass)."""
        own = RunRecord.load(folder).model.own
        model = self.models.get(own.qualname) if own else None
        return copy.deepcopy(model) if isinstance(model, nn.Module) else model

    def code_note(self, record: RunRecord) -> tuple[str | None, str | None]:
        """(whose code opens the run, why it cannot be opened): what the page says of a learner's own network."""
        own = record.model.own
        if own is None:
            return None, None
        if own.qualname in self.models:
            return f"your own network {own.qualname}, from {self.models_from}", None
        return None, (
            f"your own network {own.label}: cnnlab never imports code a run names; open it with "
            f"`cnnlab serve {self.root} --trust FILE.py` (the file that defines {own.qualname}), or "
            f"cnnlab.explore(run) in the notebook that defines it"
        )

    def split(self, name: str, split: str = "test"):
        """The run's test (or validation) images, an ImageSet, loaded once per run and kept."""
        key = (name, split)
        self.folder(name)  # a deleted run's split is not served from the cache
        if key not in self._splits:
            with self.predictor(name) as predictor:
                pass  # reading the data set needs its record, not the model's lock
            self._splits[key] = predictor.split(split)
        return self._splits[key]


def get_store(request: Request) -> RunStore:
    """FastAPI dependency: the app's RunStore (`Depends(get_store)` in an endpoint)."""
    return request.app.state.store
