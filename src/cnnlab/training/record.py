"""The run record: everything a run folder's `run.json` says, as typed dataclasses, read and written here only.

    record = RunRecord.load("runs/mlp-mnist")
    record.test.accuracy, record.best.epoch, record.preprocess, record.classes

A record is checked field by field when it is read: a run.json with a missing key, a wrong type or bad bytes is
refused in one line that names the file and the field. `metrics.csv` is written beside it from the same history.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.preprocess import DRAWINGS, MNIST_DIGIT, Preprocess
from cnnlab.errors import CnnlabError
from cnnlab.files import write_text
from cnnlab.models import get_spec
from cnnlab.models.contract import Contract, OwnModel
from cnnlab.training.config import RunConfig
from cnnlab.training.transfer import TransferInfo


@dataclass
class ModelInfo:
    name: str
    args: dict  # the builder's keyword arguments: create_model(name, **args)
    parameters: int
    outputs: str  # as the registry declared it when the run was trained
    precision: str  # bf16 | fp32: what autocast the run used
    own: OwnModel | None = None  # a learner's own nn.Module (name: its class), not a registry model


@dataclass
class DataInfo:
    name: str
    source: str  # where the files were found
    classes: list[str]
    shape: list[int]  # C, H, W
    mean: list[float]  # per channel, measured on the training split, in [0, 1] units
    std: list[float]
    train_size: int
    valid_size: int
    test_size: int
    light_on_dark: bool  # MNIST-style: a dark-on-light picture is inverted before the model sees it
    drawing: str  # how a drawing becomes an input: a name in data.preprocess.DRAWINGS, "" taken as a picture

    @property
    def preprocess(self) -> Preprocess:
        """The input contract, from what the record stores only: what an image must be made into for the model."""
        c, h, w = self.shape
        return Preprocess((c, h, w), tuple(self.mean), tuple(self.std), self.light_on_dark, self.drawing)

    def __post_init__(self):  # what the predictor relies on, beyond the types
        if not self.classes:
            raise CnnlabError("data.classes is empty: a run has at least one class")
        if len(self.shape) != 3 or any(isinstance(n, bool) or n < 1 for n in self.shape):
            raise CnnlabError(f"data.shape {self.shape}: must be [channels, height, width], each at least 1")
        if len(self.mean) != self.shape[0] or len(self.std) != self.shape[0] or min(self.std) <= 0:
            raise CnnlabError(
                f"data.mean {self.mean} and data.std {self.std}: need one value per channel "
                f"({self.shape[0]}), std above 0"
            )
        # pixels are in [0, 1]: a mean outside it, or a std so small that normalizing turns pixels into infinities,
        # is damage, not data
        if not all(math.isfinite(m) and 0 <= m <= 1 for m in self.mean) or not all(
            math.isfinite(v) and MIN_STD <= v <= 1 for v in self.std
        ):
            raise CnnlabError(
                f"data.mean {self.mean} or data.std {self.std}: not the statistics of pixels in [0, 1] "
                f"(mean in [0, 1], std from {MIN_STD:g} to 1); the file is damaged, train the run again"
            )
        if self.drawing and (self.drawing not in DRAWINGS or self.shape[0] != 1 or self.shape[1] != self.shape[2]):
            raise CnnlabError(
                f"data.drawing {self.drawing!r} for {self.shape} images: use {', '.join(map(repr, DRAWINGS))} "
                '(square grey images only) or ""'
            )


def filled_as_before(data) -> None:
    """A run.json from before the preprocessing was stored: its fields filled by the rules the code used then. Kept
    frozen here, so that changing how new runs are set up never changes how an old run reads its images."""
    info = data.get("data") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        return  # left for the checks to name
    if "light_on_dark" not in info:
        info["light_on_dark"] = info.get("name") in ("mnist", "fashion-mnist")
    if "drawing" not in info:
        info["drawing"] = MNIST_DIGIT if info.get("shape") == [1, 28, 28] else ""


MIN_STD = 1e-6


class Status(str, enum.Enum):
    """Where a run stands; run.json keeps the value. A str, so `record.status == "finished"` reads as before."""

    RUNNING = "running"  # training now (from before its first epoch), or killed: the lock tells which
    INTERRUPTED = "interrupted"  # Ctrl-C; resumable from the last finished epoch
    DIVERGED = "diverged"  # the loss or the weights became inf or nan; resumable with care
    FINISHED = "finished"  # all epochs done and tested

    def __str__(self) -> str:
        return self.value


@dataclass
class Epoch:
    epoch: int
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    lr: float
    seconds: float
    robust_acc: float | None = None  # adversarial training: validation accuracy under PGD (see adversarial.py)


@dataclass
class Best:
    epoch: int
    valid_loss: float
    valid_acc: float


@dataclass
class TestResult:
    loss: float
    accuracy: float
    per_class: list[list[int]]  # (correct, total) for each true class
    confusion: list[list[int]]  # [true, predicted] counts


@dataclass
class LastEpochTest:
    """The test result of the last epoch's weights, beside the kept (best) epoch's: what the choice of checkpoint
    gained or lost."""

    epoch: int
    loss: float
    accuracy: float


@dataclass
class RunRecord:
    config: RunConfig
    model: ModelInfo
    data: DataInfo
    cnnlab_version: str
    torch_version: str
    history: list[Epoch] = field(default_factory=list)
    best: Best | None = None
    status: Status = Status.RUNNING
    train_seconds: float = 0.0
    epochs_done: int = 0
    test: TestResult | None = None  # of the best epoch's weights
    last_epoch_test: LastEpochTest | None = None
    processes: int = 1  # how many processes trained it (torchrun); the last start's count
    transfer: TransferInfo | None = None  # the pretrained weights it started from, and what was frozen

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    @property
    def preprocess(self) -> Preprocess:
        """The input contract: what an image must be made into before the model sees it."""
        return self.data.preprocess

    @property
    def loss_name(self) -> str:
        """What the run's loss figures measure: losses of different kinds are not on one scale."""
        if self.model.outputs == "capsules":
            return "margin loss"
        smoothing = self.config.recipe.label_smoothing
        return f"cross-entropy, label smoothing {smoothing:g}" if smoothing else "cross-entropy"

    @property
    def spec(self):
        """The registry's entry for the model: what its outputs are, how it is built."""
        return get_spec(self.model.name)

    @property
    def contract(self) -> Contract:
        """What the run's network takes and gives, from the record alone (registry and own models alike)."""
        return Contract(tuple(self.data.shape), self.model.outputs)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["best"] = d["best"] or {}  # the layout run.json has always had
        return d

    def save(self, folder) -> None:
        """run.json and metrics.csv, each written atomically."""
        folder = Path(folder)
        write_text(folder / "run.json", json.dumps(self.to_dict(), indent=2))
        keys = [f.name for f in dataclasses.fields(Epoch)]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(e) for e in self.history)
        write_text(folder / "metrics.csv", out.getvalue())

    @classmethod
    def load(cls, folder) -> RunRecord:
        """The record of a run folder, or a one-line error saying what is wrong with it."""
        path = Path(folder) / "run.json"
        if not path.is_file():
            raise CnnlabError(f"{folder}: not a cnnlab run folder (no run.json); train one with `cnnlab train MODEL`")
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as e:  # bad bytes, bad JSON, absurd nesting
            raise CnnlabError(f"{path}: corrupt run.json ({e.__class__.__name__}: {str(e)[:100]})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data, source) -> RunRecord:
        """A record from parsed JSON, checked; errors name `source` (the file it came from)."""
        if isinstance(data, dict) and data.get("best") == {}:
            data["best"] = None  # a run with no finished epoch yet
        filled_as_before(data)
        try:
            record = typed(cls, data, "")
            record.check()
            return record
        except CnnlabError as e:
            raise CnnlabError(f"{source}: {e}") from None

    def check(self) -> None:
        """What the fields say together: a record whose parts disagree is damaged."""
        outputs = self.model.args.get("num_classes")
        if isinstance(outputs, int) and outputs != len(self.data.classes):
            raise CnnlabError(
                f"data.classes lists {len(self.data.classes)} classes but the model has {outputs} "
                "outputs (model.args.num_classes); the file is damaged, train the run again"
            )
        epochs = self.config.recipe.epochs
        if not 0 <= self.epochs_done <= epochs or len(self.history) > epochs:
            raise CnnlabError(
                f"epochs_done {self.epochs_done} (history of {len(self.history)}) of "
                f"{epochs} epochs: impossible; the file is damaged"
            )


def typed(kind, value, where: str):
    """`value` (parsed JSON) checked against the type annotation `kind`, dataclasses built field by field."""
    name = where or "the record"
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise CnnlabError(f"{name} {value!r:.60}: use one of {', '.join(m.value for m in kind)}") from None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return typed(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise CnnlabError(f"{name} should be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind)}
        missing = [
            n
            for n, f in fields.items()
            if n not in value and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise CnnlabError(f"{name} lacks {', '.join(missing)}")
        return kind(**{n: typed(hints[n], value[n], f"{where}.{n}".lstrip(".")) for n in fields if n in value})
    if origin is list:
        if not isinstance(value, list):
            raise CnnlabError(f"{name} should be a list, got {type(value).__name__}")
        return [typed(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = origin or kind
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise CnnlabError(f"{name} should be {getattr(expected, '__name__', expected)}, got {value!r:.60}")
    return value


def compare_table(names: list[str], records: list[RunRecord]) -> str:
    """One line per run: model, size, epochs, time, validation and test accuracy. Accuracy, not loss: losses of
    different recipes (label smoothing, CapsNet's margin loss) are not on one scale."""
    width = max(12, *map(len, names))
    lines = [
        f"{'run':<{width}} {'model':<14} {'parameters':>11} {'epochs':>6} {'time':>8} {'best valid acc':>14} "
        f"{'test accuracy':>13} {'(last epoch)':>12}"
    ]
    for name, r in zip(names, records):
        test = "unfinished" if r.test is None else f"{100 * r.test.accuracy:.2f}%"
        last = f"{100 * r.last_epoch_test.accuracy:.2f}%" if r.last_epoch_test else "-"
        valid = f"{100 * r.best.valid_acc:.2f}%" if r.best else "-"
        lines.append(
            f"{name:<{width}} {r.model.name:<14} {r.model.parameters:>11,} {len(r.history):>6} "
            f"{r.train_seconds:>7.0f}s {valid:>14} {test:>13} {last:>12}"
        )
    return "\n".join(lines)
