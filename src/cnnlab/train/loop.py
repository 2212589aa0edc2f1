"""The training loop: one recipe, validation every epoch, the best weights kept, resumable at any epoch.

    result = train(RunConfig("mlp", "mnist", recipe), "runs/mlp")

Everything the run makes goes into its folder: best.safetensors, last.safetensors, run.json, metrics.csv and the
figures. Ctrl-C loses at most the epoch in progress; `resume=True` continues from the last finished one and ends
with exactly the weights an uninterrupted run would have.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import cnnlab
from cnnlab.data import Batches, Dataset, channel_stats, load_dataset, split
from cnnlab.errors import CnnlabError
from cnnlab.files import write_text
from cnnlab.models import count_parameters, create_model, get_spec
from cnnlab.train.checkpoint import load_training_state, load_weights, save_training_state, save_weights
from cnnlab.train.metrics import autocast, evaluate, lesson_table, loss_and_scores, resolve_precision
from cnnlab.train.recipe import Recipe
from cnnlab.train.runs import read_info


@dataclass
class RunConfig:
    model: str
    dataset: str
    recipe: Recipe
    data_root: str | None = None
    valid_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"          # auto | bf16 | fp32
    image_size: int | None = None    # image folders: the side every image is resized to
    model_args: dict = field(default_factory=dict)
    weights: str | None = None       # torchvision .pth to start from (fine-tuning)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "recipe": self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls(**{**d, "recipe": Recipe(**d["recipe"])})


def make_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    """Weight decay on weights only: decaying biases and norm scales just hurts."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer in ("adam", "adamw"):
        cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
        return cls(groups, lr=recipe.lr)
    raise CnnlabError(f"unknown optimizer {recipe.optimizer!r}; use sgd, adam or adamw")


def make_augment(spec: str, mean, std):
    """The recipe's augmentation; pixels it brings in from outside the image are black, as in the lesson."""
    from cnnlab.data.augment import parse_augment

    fill = [(0 - m) / s for m, s in zip(mean, std)]
    return parse_augment(spec, fill=fill) or None


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


class Run:
    """The pieces of one training run, rebuilt identically from its config (which is what makes resume work)."""

    def __init__(self, config: RunConfig, folder, data: Dataset | None = None):
        self.config, self.folder = config, Path(folder)
        torch.manual_seed(config.seed)
        self.data = data or load_dataset(config.dataset, data_root=config.data_root, image_size=config.image_size)
        self.train_set, self.valid_set = split(self.data.train, config.valid_fraction, config.seed)
        self.mean, self.std = channel_stats(self.train_set.images)
        c, h, _ = self.data.shape
        self.model_args = {"in_channels": c, "num_classes": len(self.data.classes), "image_size": h,
                           **config.model_args}
        if get_spec(config.model).takes_normalization:
            self.model_args.update(mean=self.mean, std=self.std)
        self.model = create_model(config.model, **self.model_args)
        if config.weights:
            from cnnlab.models.weights import load_torchvision_weights

            self.weights_note = load_torchvision_weights(self.model, config.weights)
        self.model = self.model.to(config.device)
        self.channels_last = has_conv(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision = resolve_precision(config.precision, config.device)
        self.optimizer = make_optimizer(config.recipe, self.model)
        self.info: dict = {}

    def batches(self, part, shuffle=False, augment=None, batch_size=None) -> Batches:
        return Batches(part, batch_size or self.config.recipe.batch_size, self.mean, self.std, self.config.device,
                       shuffle=shuffle, augment=augment, seed=self.config.seed, channels_last=self.channels_last)

    def describe(self) -> dict:
        spec = get_spec(self.config.model)
        return {
            "cnnlab_version": cnnlab.__version__, "torch_version": torch.__version__,
            "config": self.config.to_dict(),
            "model": {"name": spec.name, "args": self.model_args, "parameters": count_parameters(self.model),
                      "outputs": spec.outputs, "precision": self.precision},
            "data": {"name": self.data.name, "source": self.data.source, "classes": self.data.classes,
                     "shape": list(self.data.shape), "mean": self.mean, "std": self.std,
                     "train_size": len(self.train_set), "valid_size": len(self.valid_set),
                     "test_size": len(self.data.test)},
        }

    def save_info(self) -> None:
        write_text(self.folder / "run.json", json.dumps(self.info, indent=2))
        keys = ["epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys)
        writer.writeheader()
        writer.writerows([{k: row[k] for k in keys} for row in self.info["history"]])
        write_text(self.folder / "metrics.csv", out.getvalue())


def train_epoch(run: Run, batches: Batches, epoch: int, progress: bool) -> tuple[float, float, float]:
    """One pass over the training batches; returns (mean loss, accuracy, last learning rate)."""
    from tqdm import tqdm

    recipe, model, optimizer = run.config.recipe, run.model, run.optimizer
    steps_per_epoch, total_steps = len(batches), len(batches) * recipe.epochs
    model.train()
    batches.set_epoch(epoch)
    loss_sum = torch.zeros((), device=run.config.device)
    correct = torch.zeros((), dtype=torch.long, device=run.config.device)
    seen, lr = 0, recipe.lr
    bar = tqdm(batches, desc=f"epoch {epoch}/{recipe.epochs}", leave=False, disable=not progress, unit="batch")
    for i, (x, y) in enumerate(bar):
        lr = recipe.lr_at((epoch - 1) * steps_per_epoch + i, total_steps, steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(run.config.device, run.precision):
            loss, scores = loss_and_scores(model, x, y, recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (scores.argmax(1) == y).sum()
        seen += len(y)
        if progress and i % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
    return float(loss_sum) / seen, int(correct) / seen, lr


def train(config: RunConfig, folder, *, resume: bool = False, progress: bool = True, data: Dataset | None = None,
          on_epoch_end: Callable[[int, Run], bool] | None = None, log: Callable[[str], None] = print) -> Run:
    """Train (or resume) a run in `folder`. `on_epoch_end(epoch, run)` may return True to stop early."""
    run = Run(config, folder, data)
    folder = run.folder
    recipe = config.recipe
    augment = make_augment(recipe.augment, run.mean, run.std)
    train_batches = run.batches(run.train_set, shuffle=True, augment=augment)
    valid_batches = run.batches(run.valid_set, batch_size=1024)
    first_epoch = 1
    if resume:
        previous = read_info(folder)
        run.info = {**previous, **run.describe(), "history": previous.get("history", []),
                    "best": previous.get("best", {})}
        first_epoch = load_training_state(folder / "last.safetensors", run.model, run.optimizer) + 1
        run.info["history"] = run.info["history"][:first_epoch - 1]
        log(f"resuming {folder} after epoch {first_epoch - 1} of {recipe.epochs}")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        run.info = {**run.describe(), "history": [], "best": {}}
    d = run.info["data"]
    schedule = recipe.schedule + (f" x{recipe.decay:g}/epoch" if recipe.schedule == "exponential" else "")
    log(f"{config.model} ({run.info['model']['parameters']:,} parameters) on {d['name']} from {d['source']}: "
        f"{d['train_size']:,} train / {d['valid_size']:,} valid / {d['test_size']:,} test, "
        f"{recipe.optimizer} lr {recipe.lr} {schedule}, batch {recipe.batch_size}, {recipe.epochs} epochs, "
        f"{run.precision}")
    if config.weights and not resume:
        log(run.weights_note)
    run.info["status"] = "running"
    started = time.perf_counter() - run.info.get("train_seconds", 0.0)
    epoch = first_epoch - 1
    try:
        for epoch in range(first_epoch, recipe.epochs + 1):
            t0 = time.perf_counter()
            train_loss, train_acc, lr = train_epoch(run, train_batches, epoch, progress)
            valid = evaluate(run.model, valid_batches, len(run.data.classes), run.precision)
            seconds = time.perf_counter() - t0
            run.info["history"].append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                                        "valid_loss": valid.loss, "valid_acc": valid.accuracy, "lr": lr,
                                        "seconds": seconds})
            improved = valid.loss < run.info["best"].get("valid_loss", float("inf"))
            if improved:
                save_weights(folder / "best.safetensors", run.model)
                run.info["best"] = {"epoch": epoch, "valid_loss": valid.loss, "valid_acc": valid.accuracy}
            save_training_state(folder / "last.safetensors", run.model, run.optimizer, epoch)
            run.info["train_seconds"] = time.perf_counter() - started
            run.info["epochs_done"] = epoch
            run.save_info()
            log(f"epoch {epoch:3d}/{recipe.epochs}  train loss {train_loss:.4f} acc {100 * train_acc:5.2f}%  "
                f"valid loss {valid.loss:.4f} acc {100 * valid.accuracy:5.2f}%  {seconds:5.1f}s"
                + ("  * best, saved" if improved else ""))
            if on_epoch_end is not None and on_epoch_end(epoch, run):
                break
    except KeyboardInterrupt:
        run.info["status"] = "interrupted"
        if run.info["history"]:
            run.save_info()
            write_training_figures(run)
        log(f"\ninterrupted during epoch {epoch + 1}: everything up to epoch {epoch} is saved in {folder}\n"
            f"continue with: cnnlab train --resume {folder}")
        raise
    finish(run, log)
    return run


def finish(run: Run, log=print) -> None:
    """Test the best weights (not merely the last ones), then write the report and the figures."""
    load_weights(run.folder / "best.safetensors", run.model)
    test = evaluate(run.model, run.batches(run.data.test, batch_size=1024), len(run.data.classes), run.precision)
    run.info["status"] = "finished"
    run.info["test"] = {"loss": test.loss, "accuracy": test.accuracy, "per_class": test.per_class(),
                        "confusion": test.confusion.tolist()}
    run.save_info()
    log(lesson_table(test, run.data.classes))
    write_training_figures(run, test)


def write_training_figures(run: Run, test=None) -> None:
    from cnnlab import plots

    plots.training_curves(run.info["history"], run.folder / "curves.png", best_epoch=run.info["best"].get("epoch"))
    if test is not None:
        plots.confusion_matrix(test.confusion, run.data.classes, run.folder / "confusion.png")
        labels = run.data.test.labels
        wrong = (test.predictions != labels).nonzero().flatten()[:8]
        shown = torch.cat([torch.arange(min(len(labels), 32 - len(wrong))), wrong])
        plots.sample_grid(run.data.test.images[shown], labels[shown], test.predictions[shown], run.data.classes,
                          run.folder / "samples.png", n_wrong=len(wrong))
        if hasattr(run.model, "reconstruct"):     # capsule networks: what the decoder makes of the capsules
            x = next(iter(run.batches(run.data.test.subset(torch.arange(min(16, len(labels)))), batch_size=16)))[0]
            recon = (run.model.eval().reconstruct(x).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
            plots.reconstructions(run.data.test.images[:len(recon)], recon, run.folder / "reconstructions.png")
