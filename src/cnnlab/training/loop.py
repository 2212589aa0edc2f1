"""The training loop: one recipe, validation every epoch, the best weights kept, resumable at any epoch.

    run = train(make_config("mlp", "mnist"), "runs/mlp")

Everything the run makes goes into its folder: best.safetensors, last.safetensors, run.json, metrics.csv and the
figures. Ctrl-C loses at most the epoch in progress; `resume=True` continues from the last finished one and ends
with exactly the weights an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from cnnlab.data import Batches, Dataset, Preprocess, channel_stats, load_dataset, split
from cnnlab.data.augment import augment_for
from cnnlab.data.batches import evaluation_batch
from cnnlab.data.corrupt import corrupt
from cnnlab.data.preprocess import LIGHT_ON_DARK
from cnnlab.errors import CnnlabError
from cnnlab.models import ModelSpec, Recipe, count_parameters, create_model, get_spec
from cnnlab.models.contract import OwnModel
from cnnlab.models.dropout import set_dropout
from cnnlab.training.checkpoint import load_training_state, read_metadata, read_state, save_state, save_training_state
from cnnlab.training.config import RunConfig
from cnnlab.training.custom import prepare_own, runs_channels_last
from cnnlab.training.distributed import World, agree, gathered, join, leave, lost_peer, smallest, total
from cnnlab.training.folder import owned, prepare_new_run
from cnnlab.training.metrics import (
    Evaluation,
    autocast,
    evaluate_images,
    lesson_table,
    loss_and_scores,
    resolve_precision,
)
from cnnlab.training.record import Best, DataInfo, Epoch, LastEpochTest, ModelInfo, RunRecord, Status, TestResult
from cnnlab.training.transfer import normalization, parameter_groups, start_from
from cnnlab.version import __version__


def make_optimizer(recipe: Recipe, model: nn.Module, pretrained: bool = False) -> torch.optim.Optimizer:
    """Weight decay on weights only: decaying biases and norm scales just hurts. Each group's `lr_scale` is its
    share of the scheduled learning rate (biases may learn faster: `recipe.bias_lr_scale`). From pretrained
    weights, frozen parameters are left out and the pretrained ones may learn slower (see transfer.py)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay, "lr_scale": 1.0},
        {"params": rest, "weight_decay": 0.0, "lr_scale": recipe.bias_lr_scale},
    ]
    if pretrained:
        groups = parameter_groups(recipe, model, pretrained)
    # one fused kernel per group, not several passes per tensor: AdamW's step 7x and SGD's 5x faster on a 2-core
    # CPU (the MLP's step 1.3 ms less); the same update, rounded differently
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, fused=fused)
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=recipe.lr, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The scheduled learning rate, times each group's share (a checkpoint from before shares had none: 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def fits(model: nn.Module, name: str, shape: tuple[int, int, int]) -> None:
    """One image through the model before any training: a size it cannot take is refused in a line, not after
    minutes of data loading in a shape error from deep inside."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *shape))
    except RuntimeError as e:
        raise CnnlabError(
            f"{name} cannot take {shape[1]}x{shape[2]} images with {shape[0]} channel(s) "
            f"({str(e).splitlines()[0][:120]}); image folders: choose --image-size, or pick a model "
            "for small images (mnist-cnn, lesson-cnn, resnet18-cifar)"
        ) from None


def fits_in_memory(name: str, image_size: int) -> None:
    """The model built for image_size x image_size on the meta device (no memory): one whose training state alone
    (weights, gradients, two optimizer moments) is more than this machine's memory is refused before any data is
    read. A model that cannot be built so is left to the checks after loading."""
    import os

    try:
        with torch.device("meta"):
            parameters = count_parameters(create_model(name, in_channels=3, num_classes=2, image_size=image_size))
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (RuntimeError, TypeError, ValueError, OSError, CnnlabError):
        return
    need = 4 * 4 * parameters
    if need > memory:
        raise CnnlabError(
            f"{name} for {image_size}x{image_size} images has {parameters:,} parameters: training "
            f"them needs {need / 2**30:,.0f} GiB, this machine has {memory / 2**30:,.0f} GiB; "
            "choose a smaller --image-size"
        )


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


class Lookahead:
    """Slow weights (airbench's Lookahead): every `every` steps they move toward the trained weights by a step that
    shrinks as training ends, and the trained weights are set to them: the end of a run averages its last steps.
    The epoch's last step updates too, so between epochs both agree and a resumed run needs no extra state."""

    def __init__(self, model: nn.Module, every: int = 5):
        self.tensors = [t for t in model.state_dict().values() if t.is_floating_point()]  # norm statistics too
        self.slow = [t.detach().clone() for t in self.tensors]
        self.every = every

    def step(self, step: int, total_steps: int, epoch_ends: bool) -> None:
        if step % self.every and not epoch_ends:
            return
        keep = 0.95**self.every * (step / total_steps) ** 3  # ~0 early on: the slow weights just follow
        with torch.no_grad():
            for slow, fast in zip(self.slow, self.tensors):
                slow.lerp_(fast, 1 - keep)
                fast.copy_(slow)


class LossOf(nn.Module):
    """The training loss as a module's forward: what DistributedDataParallel wraps (it syncs the gradients of what
    its forward used, and CapsNet's loss runs the model's forward itself)."""

    def __init__(self, model: nn.Module, label_smoothing: float):
        super().__init__()
        self.model, self.label_smoothing = model, label_smoothing

    def forward(self, x, y):
        return loss_and_scores(self.model, x, y, self.label_smoothing)


class Run:
    """The pieces of one training run, rebuilt identically from its config (which is what makes resume work)."""

    def __init__(
        self,
        config: RunConfig,
        folder,
        data: Dataset | None = None,
        fresh: bool = True,
        world: World = World(),
        model=None,
        own: OwnModel | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ):
        self.config, self.folder, self.world = config, Path(folder), world
        torch.manual_seed(config.seed)
        if data is None and config.image_size and not config.custom:
            fits_in_memory(config.model, config.image_size)  # before a single image is decoded at that size
        self.data = data or load_dataset(config.dataset, data_root=config.data_root, image_size=config.image_size)
        self.data = corrupt(self.data, config.corrupt, config.seed)  # unchanged without --corrupt
        self.train_set, self.valid_set = split(self.data.train, config.valid_fraction, config.seed)
        self.batch_note = None
        if config.recipe.batch_size > len(self.train_set):
            if config.custom or config.recipe.batch_size not in {
                r.batch_size for r in get_spec(config.model).recipes.values()
            }:
                raise CnnlabError(
                    f"batch size {config.recipe.batch_size} is larger than the {len(self.train_set)} "
                    f"training images; use --batch-size {len(self.train_set)} or less"
                )
            # the recipe's batch, not the user's: a small folder trains as one batch (recorded so, for --resume)
            self.batch_note = (
                f"the {len(self.train_set)} training images are fewer than the recipe's batch of "
                f"{config.recipe.batch_size}: all of them are trained on as one batch"
            )
            config = self.config = dataclasses.replace(
                config, recipe=config.recipe.replace(batch_size=len(self.train_set))
            )
        mean, std = normalization(config.weights) or channel_stats(self.train_set)
        self.preprocess = Preprocess(self.data.shape, tuple(mean), tuple(std), self.data.name in LIGHT_ON_DARK)
        augment_for(config.recipe.augment, self.preprocess)  # checked against the image size, before any file
        c, h, _ = self.data.shape
        channels_last = True
        if config.custom:  # the caller's own nn.Module: built or taken as given, checked on two images
            self.model, own = prepare_own(model, config, self.data.shape, len(self.data.classes), own)
            channels_last = has_conv(self.model) and runs_channels_last(self.model, self.data.shape)
            self.model_args = own.args or {}
            spec = ModelSpec(config.model, type(self.model), "your own network", self.data.shape)
        else:
            self.model_args = {
                "in_channels": c,
                "num_classes": len(self.data.classes),
                "image_size": h,
                **config.model_args,
            }
            spec = get_spec(config.model)
            if spec.takes_normalization:
                self.model_args.update(mean=mean, std=std)
            self.model = create_model(config.model, **self.model_args)
            if config.recipe.dropout is not None:
                set_dropout(self.model, config.recipe.dropout)
            fits(self.model, config.model, self.data.shape)
        self.weights_note, self.transfer = None, None
        if config.weights and fresh:  # resumed, the weights come from last.safetensors, not the .pth again
            self.weights_note, self.transfer = start_from(
                self.model, config.model, config.weights, config.recipe, progress, log
            )
        elif config.weights:  # resumed: the same parameters stay frozen
            from cnnlab.training.transfer import freeze

            freeze(self.model, config.recipe)
        self.model = self.model.to(config.device)
        self.channels_last = channels_last and has_conv(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if spec.initialized_from_data and fresh:  # resumed, those weights come from last.safetensors
            sample = self.train_set.subset(torch.arange(min(5000, len(self.train_set))))
            self.model.initialize_from(next(iter(self.batches(sample, batch_size=len(sample.labels))))[0])
        self.precision = resolve_precision(config.precision, config.device)
        self.optimizer = make_optimizer(config.recipe, self.model, pretrained=bool(config.weights))
        self.loss = LossOf(self.model, config.recipe.label_smoothing)
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            cuda = torch.device(config.device).type == "cuda"
            self.loss = DistributedDataParallel(self.loss, device_ids=[config.device] if cuda else None)
        self.best_state: dict[str, torch.Tensor] | None = None  # weights of the best epoch so far
        self.record = RunRecord(
            config,
            ModelInfo(spec.name, self.model_args, count_parameters(self.model), spec.outputs, self.precision, own),
            DataInfo(
                self.data.name,
                self.data.source,
                self.data.classes,
                list(self.data.shape),
                mean,
                std,
                len(self.train_set),
                len(self.valid_set),
                len(self.data.test),
            ),
            __version__,
            torch.__version__,
            processes=world.size,
            transfer=self.transfer,
        )

    def batches(self, part, shuffle=False, augment=None, batch_size=None) -> Batches:
        return Batches(
            part,
            batch_size or self.config.recipe.batch_size,
            self.preprocess,
            self.config.device,
            shuffle=shuffle,
            augment=augment,
            seed=self.config.seed,
            channels_last=self.channels_last,
            share=(self.world.rank, self.world.size),
        )

    def evaluate(self, part) -> Evaluation:
        """Loss, confusion and predictions on `part`; with several processes each takes a slice, then the sums."""
        world = self.world
        if world.distributed:
            part = part.subset(torch.arange(len(part.labels)).tensor_split(world.size)[world.rank])
        local = evaluate_images(
            self.model,
            part,
            self.preprocess,
            len(self.data.classes),
            self.precision,
            self.config.recipe.label_smoothing,
            self.config.device,
        )
        if not world.distributed:
            return local
        loss_sum, confusion = total(world, torch.tensor(local.loss * local.total, dtype=torch.float64), local.confusion)
        return Evaluation(float(loss_sum) / max(1, int(confusion.sum())), confusion, gathered(world, local.predictions))

    def resume(self, log) -> int:
        """Continue from the commit point, last.safetensors; returns the first epoch to run. The other files are
        rewritten from it: a crash may have come between its rename and theirs."""
        path = self.folder / "last.safetensors"
        if not path.is_file():
            RunRecord.load(self.folder)  # not a run folder at all: say that first
            raise CnnlabError(f"{self.folder}: no last.safetensors to resume from (no epoch finished); train it again")
        previous = committed_record(self.folder)
        same_data(previous.data, self.record.data, self.folder)  # before the weights: a class count may differ
        done, best, _ = load_training_state(path, self.model, self.optimizer)
        if not 1 <= done <= self.config.recipe.epochs:
            raise CnnlabError(
                f"{path}: saved after epoch {done} of {self.config.recipe.epochs}: impossible, the "
                "file is damaged; restore it, or start the run again"
            )
        # a checkpoint from before the best weights travelled in it: they are in best.safetensors
        self.best_state = best if best is not None else read_state(self.folder / "best.safetensors")
        self.record.history, self.record.best = previous.history[:done], previous.best
        self.record.train_seconds, self.record.epochs_done = previous.train_seconds, done
        self.record.transfer = previous.transfer
        if self.world.main:
            save_state(self.folder / "best.safetensors", self.best_state)
            self.record.save(self.folder)
        log(f"resuming {self.folder} after epoch {done} of {self.config.recipe.epochs}")
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


def committed_record(folder) -> RunRecord:
    """The record as of the last committed epoch (in last.safetensors), else run.json: what resume starts from."""
    path = Path(folder) / "last.safetensors"
    saved = read_metadata(path).get("record") if path.is_file() else None
    return RunRecord.from_dict(saved, path) if saved else RunRecord.load(folder)


class Diverged(CnnlabError):
    """The loss or the weights stopped being numbers: the run cannot go on, and says what to try."""


def train_epoch(run: Run, batches: Batches, epoch: int, progress: bool) -> tuple[float, float, float]:
    """One pass over the training batches; returns (mean loss, accuracy, last learning rate)."""
    from tqdm import tqdm

    recipe, model, optimizer = run.config.recipe, run.model, run.optimizer
    steps_per_epoch, total_steps = len(batches), len(batches) * recipe.epochs
    model.train()
    batches.set_epoch(epoch)
    loss_sum = torch.zeros((), device=run.config.device)
    correct = torch.zeros((), dtype=torch.long, device=run.config.device)
    first_bad = torch.tensor(steps_per_epoch, device=run.config.device)  # the first step whose loss is not finite
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
        with autocast(run.config.device, run.precision):
            loss, scores = run.loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        if run.world.distributed:  # DDP averages over processes: weigh each by its share of the batch
            (loss * (len(y) * run.world.size / batches.global_batch(i))).backward()
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
    loss_sum, correct, first_bad = *total(run.world, loss_sum, correct), smallest(run.world, first_bad)
    seen = len(batches.labels)
    if int(first_bad) < steps_per_epoch:
        raise diverged(run, epoch, f"at step {int(first_bad) + 1} of {steps_per_epoch} the training loss")
    if not all(p.isfinite().all() for p in model.parameters()):
        raise diverged(run, epoch, "by its end the weights")
    return float(loss_sum) / seen, int(correct) / seen, lr


def adversarial_batches(run: Run, batches: Batches):
    from cnnlab.training.adversarial import AdversarialBatches, training_attack

    recipe = run.config.recipe
    return AdversarialBatches(
        batches,
        run.model,
        run.preprocess,
        training_attack(recipe.adversarial, recipe.adv_eps),
        run.record.spec.capsules,
        run.config.seed,
    )


def adversarial_check(run: Run) -> float | None:
    """Adversarial training: the validation accuracy under PGD at the training's eps (None otherwise)."""
    recipe = run.config.recipe
    if not recipe.adversarial:
        return None
    from cnnlab.training.adversarial import ROBUST_CHECK_IMAGES, robust_accuracy, robust_check

    part = run.valid_set.subset(torch.arange(min(ROBUST_CHECK_IMAGES, len(run.valid_set))))
    batches = Batches(
        part, evaluation_batch(run.data.shape), run.preprocess, run.config.device, channels_last=run.channels_last
    )
    return robust_accuracy(
        run.model, batches, run.preprocess, robust_check(recipe.adv_eps), run.record.spec.capsules, seed=run.config.seed
    )


def diverged(run: Run, epoch: int, what: str) -> Diverged:
    lr, done = run.config.recipe.lr, run.record.epochs_done
    kept = f"{finished(done)} kept in {run.folder}" if done else "no epoch finished, so nothing is kept"
    return Diverged(
        f"epoch {epoch}: {what} became inf or nan: training diverged; try a lower learning rate, e.g. "
        f"--lr {lr / 10:.3g} (this run's is {lr:g}); {kept}"
    )


def run_epoch(run: Run, train_batches: Batches, epoch: int, progress: bool) -> str:
    """Train and validate one epoch, keep the weights if they are the best so far, and commit the epoch; returns
    its log line."""
    record, t0 = run.record, time.perf_counter()
    train_loss, train_acc, lr = train_epoch(run, train_batches, epoch, progress)
    valid = run.evaluate(run.valid_set)
    if not math.isfinite(valid.loss):
        raise diverged(run, epoch, "on the validation images the loss")
    robust = adversarial_check(run)
    seconds = time.perf_counter() - t0
    record.history.append(Epoch(epoch, train_loss, train_acc, valid.loss, valid.accuracy, lr, seconds, robust))
    improved = record.best is None or valid.loss < record.best.valid_loss
    if improved:
        run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
        record.best = Best(epoch, valid.loss, valid.accuracy)
    record.train_seconds += seconds
    record.epochs_done = epoch
    if run.world.main:
        # the commit point: one atomic rename; best.safetensors, run.json and metrics.csv are views of it
        save_training_state(
            run.folder / "last.safetensors", run.model, run.optimizer, epoch, run.best_state, record.to_dict()
        )
        if improved:
            save_state(run.folder / "best.safetensors", run.best_state)
        record.save(run.folder)
    return (
        f"epoch {epoch:3d}/{run.config.recipe.epochs}  train loss {train_loss:.4f} acc {100 * train_acc:5.2f}%  "
        f"valid loss {valid.loss:.4f} acc {100 * valid.accuracy:5.2f}%"
        + (f" robust {100 * robust:5.2f}%" if robust is not None else "")
        + f"  {seconds:5.1f}s"
        + ("  * best, saved" if improved else "")
    )


def train(
    config: RunConfig,
    folder,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    data: Dataset | None = None,
    on_epoch_end: Callable[[int, Run], bool] | None = None,
    log: Callable[[str], None] = print,
    model=None,
) -> Run:
    """Train (or resume) a run in `folder`. `on_epoch_end(epoch, run)` may return True to stop early. A folder
    that holds a run already is refused unless `overwrite`; another process training into it, always.
    Started by torchrun, each process trains its share (see distributed.py); rank 0 alone writes and logs.
    `model`: the caller's own nn.Module class or instance when `config.custom`."""
    world, device = join(config.device)
    if not world.main:
        progress, log = False, (lambda line: None)
    run, ended_well = None, False
    try:
        own = committed_record(folder).model.own if resume and config.custom else None
        run = Run(
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
                    claim = held.enter_context(owned(run.folder))
                    if not resume:
                        prepare_new_run(run.folder, overwrite)
                        run.record.save(run.folder)  # the explorer lists the run from its first second
                        claim.started = True
                except Exception as error:
                    refusal = error
            run.folder = Path(agree(world, run.folder, refusal))
            first_epoch = run.resume(log) if resume else 1
            run_epochs(run, first_epoch, progress, on_epoch_end, log)
        ended_well = True
    finally:
        if run is not None and world.distributed:
            run.loss = run.loss.module  # DDP holds the process group: let it go now, not at interpreter exit
        leave(world, together=ended_well)
    return run


def run_epochs(run: Run, first_epoch: int, progress: bool, on_epoch_end, log) -> None:
    """The epochs from `first_epoch` on, then the test; Ctrl-C and divergence leave a resumable folder."""
    config, record = run.config, run.record
    recipe = config.recipe
    train_batches = run.batches(run.train_set, shuffle=True, augment=augment_for(recipe.augment, run.preprocess))
    if recipe.adversarial:
        train_batches = adversarial_batches(run, train_batches)
    d = record.data
    processes = f", {run.world.size} processes" if run.world.distributed else ""
    log(
        f"{config.model} ({record.model.parameters:,} parameters) on {d.name} from {d.source}: "
        f"{d.train_size:,} train / {d.valid_size:,} valid / {d.test_size:,} test, {recipe.describe()}, "
        f"{run.precision}{processes}"
    )
    if run.weights_note:
        log(run.weights_note)
    if run.batch_note:
        log(run.batch_note)
    try:
        for epoch in range(first_epoch, recipe.epochs + 1):
            log(run_epoch(run, train_batches, epoch, progress))
            if on_epoch_end is not None and on_epoch_end(epoch, run):
                break
        finish(run, log)
    except KeyboardInterrupt as stop:
        stop.saved = interrupted(run, log)  # the command line then says how to start again if nothing was
        raise
    except Diverged:
        if record.epochs_done and run.world.main:
            record.status = Status.DIVERGED
            record.save(run.folder)
        raise
    except RuntimeError as error:  # a collective failed: another process died
        if run.world.distributed:
            raise lost_peer(error, run.folder) from None
        raise


def finished(done: int) -> str:
    """'epoch 1 is' or 'epochs 1-5 are', for messages about what a stopped run keeps."""
    return "epoch 1 is" if done == 1 else f"epochs 1-{done} are"


def interrupted(run: Run, log) -> bool:
    """After Ctrl-C: save what finished epochs made, and say exactly what can be done next; returns whether an
    epoch was saved (whether --resume can continue it)."""
    done = run.record.epochs_done
    if not run.world.main:
        return bool(done)
    if not done:
        log("\ninterrupted during epoch 1: no epoch finished, so nothing was saved; start it again the same way")
        return False
    run.record.status = Status.INTERRUPTED
    run.record.save(run.folder)
    write_training_figures(run)
    again = resume_command(run.folder, run.config)
    if run.config.custom:  # the class comes from the caller again
        again = f"cnnlab.resume({str(run.folder)!r}, model={run.config.model}), or {again} FILE.py:{run.config.model}"
    log(f"\ninterrupted during epoch {done + 1}: {finished(done)} saved in {run.folder}\ncontinue with: {again}")
    return True


def resume_command(folder, config: RunConfig) -> str:
    """The command that continues this run: the folder holds everything else, the data's place included (given
    again, so that the line also works where the default data folders differ)."""
    import shlex

    data = ["--data-root", config.data_root] if config.data_root else []
    return shlex.join(["cnnlab", "train", "--resume", str(folder), *data])


def finish(run: Run, log=print) -> None:
    """Test the best weights (not merely the last ones), and the last ones beside them when they differ; then
    write the report and the figures."""
    record = run.record
    last, best = record.history[-1].epoch, record.best.epoch
    last_weights_test = run.evaluate(run.data.test) if last != best else None
    run.model.load_state_dict(run.best_state)  # what best.safetensors holds, in every process's memory
    test = run.evaluate(run.data.test)
    last_test = test if last_weights_test is None else last_weights_test
    record.last_epoch_test = LastEpochTest(last, last_test.loss, last_test.accuracy)
    if not run.world.main:
        return
    record.status = Status.FINISHED
    record.test = TestResult(test.loss, test.accuracy, [list(p) for p in test.per_class()], test.confusion.tolist())
    record.save(run.folder)
    log(lesson_table(test, run.data.classes))
    if last != best:
        log(
            f"(the weights of epoch {best}, the lowest validation loss, were tested; the last epoch's, {last}, give "
            f"{100 * last_test.accuracy:.2f}%)"
        )
    warning = no_better_than_guessing(test.accuracy, run.data.test.labels, run.data.classes)
    if warning:
        log(warning)
    write_training_figures(run, test)


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


def write_training_figures(run: Run, test: Evaluation | None = None) -> None:
    from cnnlab.plots import confusion_matrix, reconstructions, sample_grid, save

    save(curves(run.record, run.model), run.folder / "curves.png")
    if test is None:
        return
    save(confusion_matrix(test.confusion, run.data.classes), run.folder / "confusion.png")
    labels = run.data.test.labels
    shown, n_wrong = sample_indices(test.predictions, labels)
    save(
        sample_grid(
            run.data.test.pixels(shown), labels[shown], test.predictions[shown], run.data.classes, n_wrong=n_wrong
        ),
        run.folder / "samples.png",
    )
    if run.record.contract.capsules:  # what the decoder makes of the capsules
        x = next(iter(run.batches(run.data.test.subset(torch.arange(min(16, len(labels)))), batch_size=16)))[0]
        recon = (run.model.eval().reconstruct(x).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        save(reconstructions(run.data.test.pixels(slice(0, len(recon))), recon), run.folder / "reconstructions.png")


def curves(record: RunRecord, model: nn.Module):
    """The run's loss and accuracy per epoch, best epoch marked, with a word on how train was measured."""
    from cnnlab.plots import training_curves

    best = record.best.epoch if record.best else None
    return training_curves([e.__dict__ for e in record.history], best, train_note(model, record.config.recipe))
