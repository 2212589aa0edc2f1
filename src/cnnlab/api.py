"""The short path for a notebook: train or load a run, then ask it things.

    import cnnlab
    run = cnnlab.train("mlp", "mnist")                 # or cnnlab.load("runs/mlp-mnist")
    run.test_accuracy                                  # 0.985...
    run.predict(["digit.png"])                         # [[("7", 0.98), ("1", 0.01), ("9", 0.004)]]
    run.explain("digit.png", "saliency").figure        # heat map over the image, shown inline
    run.curves()                                       # loss and accuracy per epoch

Your own network: `cnnlab.train(Net(), "cifar10", recipe="lesson-cnn")`, `cnnlab.load(folder, model=Net)`,
`run.explore()` (docs/guide/own-network.md).

Everything underneath stays reachable: `run.record` (the typed run.json), `run.predictor` (the model and its input
contract), `cnnlab.training`, `cnnlab.inspect`, `cnnlab.plots`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.inspect.attack import Report, robustness
from cnnlab.inspect.explanation import Explanation, explain
from cnnlab.inspect.methods import EXPLORER
from cnnlab.models.contract import not_given
from cnnlab.predict import Predictor, user_images
from cnnlab.serve.notebook import explore
from cnnlab.training.config import make_config
from cnnlab.training.custom import own_config
from cnnlab.training.folder import new_run_folder
from cnnlab.training.loop import train as train_run
from cnnlab.training.metrics import Evaluation
from cnnlab.training.record import RunRecord
from cnnlab.training.report import curves
from cnnlab.training.resume import committed_record


class Run:
    """A finished (or interrupted) training run in its folder."""

    def __init__(self, folder, weights: str = "best", model=None):
        if weights not in ("best", "last"):
            raise CnnlabError(f"weights {weights!r:.60}: use best or last")
        self.folder, self.weights = Path(folder_path(folder, "run folder")), weights
        self.model = model  # a learner's own network: its class or an instance
        self.record = RunRecord.load(self.folder)
        self._predictor: Predictor | None = None
        if self.record.model.own:  # the class checked against the record now, not at the first prediction
            self._predictor = Predictor.from_run(self.folder, self.weights, model)

    def __repr__(self) -> str:
        accuracy = f", test accuracy {100 * self.test_accuracy:.2f}%" if self.record.test else ""
        return f"Run({str(self.folder)!r}: {self.record.model.name} on {self.record.data.name}{accuracy})"

    @property
    def predictor(self) -> Predictor:
        """The model with its weights and input contract, loaded on first use."""
        if self._predictor is None:
            self._predictor = Predictor.from_run(self.folder, self.weights, self.model)
        return self._predictor

    @property
    def classes(self) -> list[str]:
        return self.record.classes

    @property
    def test_accuracy(self) -> float | None:
        return self.record.test.accuracy if self.record.test else None

    def predict(self, images, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """The top-k classes of each image: files, PIL images, or pixels [N, C, H, W] (uint8, or floats 0..1)."""
        return self.predictor.top_k(user_images(images), top_k)

    def probabilities(self, images):
        return self.predictor.probabilities(user_images(images)).numpy()

    def explain(self, images, method: str = EXPLORER[0], **options) -> Explanation:
        """`.array` (the maps), `.lines` (what was found) and `.figure`; `layer`, `target` and the method's options
        as in `cnnlab.inspect.explain` (the methods: `cnnlab.inspect.METHODS`; the default: Grad-CAM)."""
        return explain(self.predictor, method, images, **options)

    def evaluate(self, split: str = "test", data_root=None, perturb: str = "", seed: int = 0) -> Evaluation:
        return self.predictor.evaluate(split, data_root, perturb, seed)

    def export(self, path, format: str = "onnx"):
        """The model as an ONNX (or TorchScript) file with its input contract in the metadata; see cnnlab.export."""
        from cnnlab.export import export

        return export(self.predictor, path, format)

    def attack(self, method: str = "pgd", eps=(0.0, 0.02, 0.05, 0.1, 0.2), **options) -> Report:
        """Test accuracy under an adversarial attack for each eps (pixel units 0..1): `.results` and `.figure`;
        options (steps, step_size, random_start, target, limit, seed, ...) as in `cnnlab.inspect.attack.robustness`."""
        return robustness(self.predictor, method, eps, **options)

    def curves(self):
        """Loss and accuracy per epoch, the best epoch marked: a matplotlib Figure."""
        return curves(self.record, self.predictor.model)

    def explore(self, port: int = 0):
        """The explorer on this run's folder, served from this process (so a class defined in the notebook is
        live there) and shown inline in Jupyter; see `cnnlab.explore`."""
        return explore(self, port=port)


def train(
    model,
    dataset: str | None = None,
    *,
    folder=None,
    out="runs",
    recipe=None,
    overwrite: bool = False,
    progress: bool = True,
    log=print,
    **options,
) -> Run:
    """Train `model` on `dataset` (default: MNIST for 28x28 grey models, CIFAR-10 for 32x32 colour ones) with its
    recipe; `options` override recipe fields (epochs, lr, batch_size, augment, ...) or run settings (seed, device,
    data_root, valid_fraction, ...). The run goes into `folder` (default: out/MODEL-DATASET, numbered if taken);
    a folder that holds a run already is refused unless `overwrite`.

    `model` is a registered model's name, or your own nn.Module (a class, built with `model_args`, or an
    instance) mapping [N, C, H, W] to class scores; its recipe is a registered model's (`recipe="lesson-cnn"`,
    `"lesson-cnn:best"`), a `Recipe`, or the data set's default, and `dataset` must be named."""
    own = not isinstance(model, str)
    if own and dataset is None:
        raise CnnlabError('name the data set your network is for, e.g. cnnlab.train(Net(), "cifar10")')
    config = own_config(model, dataset, recipe, **options) if own else make_config(model, dataset, recipe, **options)
    folder = (
        folder_path(folder, "folder")
        if folder is not None
        else new_run_folder(folder_path(out, "out"), f"{config.model}-{config.dataset}")
    )
    trained = train_run(config, folder, overwrite=overwrite, progress=progress, log=log, model=model if own else None)
    return Run(trained.folder, model=trained.model if own else None)


def load(folder, weights: str = "best", model=None) -> Run:
    """A run folder made by `cnnlab train` (or `cnnlab.train`), ready to predict and explain. A run of your own
    network needs its class (or an instance) as `model`: cnnlab never imports code a run folder names."""
    return Run(folder, weights, model)


def resume(folder, model=None, data_root=None, progress: bool = True, log=print) -> Run:
    """Continue an interrupted run from its last finished epoch; it ends as if it had never stopped. Everything
    comes from the run folder but your own network's class (`model`); `data_root` says where the data set is if
    it has moved."""
    record = committed_record(folder_path(folder, "run folder"))
    config, own = record.config, record.model.own
    if own and (model is None or isinstance(model, str)):
        raise not_given(own, folder)
    if not own and model and model != config.model:
        raise CnnlabError(f"{folder} trains {config.model}, not {model}")
    if data_root:
        config.data_root = str(Path(folder_path(data_root, "data_root")).resolve())
    trained = train_run(config, folder, resume=True, progress=progress, log=log, model=model if own else None)
    return Run(folder, model=trained.model if own else None)


def folder_path(value, what: str) -> Path:
    """A folder given as text or a Path; anything else is one line, not a TypeError from deep inside."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise CnnlabError(f"{what} {value!r:.60}: give a folder's path (a string or a pathlib.Path)")
    return Path(value)
