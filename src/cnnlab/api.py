"""The short path for a notebook: train or load a run, then ask it things.

    import cnnlab
    run = cnnlab.train("mlp", "mnist")                 # or cnnlab.load("runs/mlp-mnist")
    run.test_accuracy                                  # 0.985...
    run.predict(["digit.png"])                         # [[("7", 0.98), ("1", 0.01), ("9", 0.004)]]
    run.explain("digit.png", "gradcam").figure         # heat map over the image, shown inline
    run.curves()                                       # loss and accuracy per epoch

Everything underneath stays reachable: `run.record` (the typed run.json), `run.predictor` (the model and its input
contract), `cnnlab.training`, `cnnlab.inspect`, `cnnlab.plots`.
"""
from __future__ import annotations

from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.inspect.attack import Report, robustness
from cnnlab.inspect.explanation import Explanation, explain
from cnnlab.predict import Predictor
from cnnlab.training.config import make_config
from cnnlab.training.folder import new_run_folder
from cnnlab.training.loop import committed_record, curves, train as train_run
from cnnlab.training.metrics import Evaluation
from cnnlab.training.record import RunRecord


class Run:
    """A finished (or interrupted) training run in its folder."""

    def __init__(self, folder, weights: str = "best"):
        self.folder, self.weights = Path(folder), weights
        self.record = RunRecord.load(self.folder)
        self._predictor: Predictor | None = None

    def __repr__(self) -> str:
        accuracy = f", test accuracy {100 * self.test_accuracy:.2f}%" if self.record.test else ""
        return f"Run({str(self.folder)!r}: {self.record.model.name} on {self.record.data.name}{accuracy})"

    @property
    def predictor(self) -> Predictor:
        """The model with its weights and input contract, loaded on first use."""
        if self._predictor is None:
            self._predictor = Predictor.from_run(self.folder, self.weights)
        return self._predictor

    @property
    def classes(self) -> list[str]:
        return self.record.classes

    @property
    def test_accuracy(self) -> float | None:
        return self.record.test.accuracy if self.record.test else None

    def predict(self, images, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """The top-k classes of each image (files, PIL images, or uint8 pixels [N, C, H, W])."""
        return self.predictor.top_k(images, top_k)

    def probabilities(self, images):
        return self.predictor.probabilities(images).numpy()

    def explain(self, images, method: str = "gradcam", **options) -> Explanation:
        """`.array` (the maps), `.lines` (what was found) and `.figure`; options as in `cnnlab.inspect.explain`."""
        return explain(self.predictor, method, images, **options)

    def evaluate(self, split: str = "test", data_root=None, perturb: str = "", seed: int = 0) -> Evaluation:
        return self.predictor.evaluate(split, data_root, perturb, seed)

    def attack(self, method: str = "pgd", eps=(0.0, 0.02, 0.05, 0.1, 0.2), **options) -> Report:
        """Test accuracy under an adversarial attack for each eps (pixel units 0..1): `.results` and `.figure`;
        options (steps, step_size, random_start, target, limit, seed, ...) as in `cnnlab.inspect.attack.robustness`."""
        return robustness(self.predictor, method, eps, **options)

    def curves(self):
        """Loss and accuracy per epoch, the best epoch marked: a matplotlib Figure."""
        return curves(self.record, self.predictor.model)


def train(model: str, dataset: str | None = None, *, folder=None, out="runs", recipe: str | None = None,
          overwrite: bool = False, progress: bool = True, log=print, **options) -> Run:
    """Train `model` on `dataset` (default: MNIST for 28x28 grey models, CIFAR-10 for 32x32 colour ones) with its
    recipe; `options` override recipe fields (epochs, lr, batch_size, augment, ...) or run settings (seed, device,
    data_root, valid_fraction, ...). The run goes into `folder` (default: out/MODEL-DATASET, numbered if taken);
    a folder that holds a run already is refused unless `overwrite`."""
    config = make_config(model, dataset, recipe, **options)
    folder = Path(folder) if folder else new_run_folder(out, f"{config.model}-{config.dataset}")
    train_run(config, folder, overwrite=overwrite, progress=progress, log=log)
    return Run(folder)


def load(folder, weights: str = "best") -> Run:
    """A run folder made by `cnnlab train` (or `cnnlab.train`), ready to predict and explain."""
    return Run(folder, weights)


def resume(folder, model: str | None = None, data_root=None, progress: bool = True, log=print) -> Run:
    """Continue an interrupted run from its last finished epoch; it ends as if it had never stopped. Everything
    comes from the run folder; `data_root` says where the data set is if it has moved."""
    config = committed_record(folder).config
    if model and model != config.model:
        raise CnnlabError(f"{folder} trains {config.model}, not {model}")
    if data_root:
        config.data_root = str(data_root)
    train_run(config, folder, resume=True, progress=progress, log=log)
    return Run(folder)
