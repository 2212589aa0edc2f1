"""Commands about models and their training: train, evaluate, predict, models, datasets."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from cnnlab.cli.base import MODEL_IMAGE_HELP, add_command, add_data_root, add_run_weights, output_path
from cnnlab.cli.flags import add_flags, given
from cnnlab.cli.pretrained import add_model_option, images_of, load_predictor
from cnnlab.cli.user_code import add_trust, class_from, is_file_class, open_predictor, own_summary
from cnnlab.data.names import DATASETS, DOWNLOADABLE
from cnnlab.errors import CnnlabError
from cnnlab.models.recipe import Recipe
from cnnlab.training.config import RunConfig


def register(sub) -> None:
    p = add_command(
        sub,
        "train",
        "train a model and keep its best checkpoint",
        """
        cnnlab train mlp --dataset mnist                   # our recipe: 98.6-98.9% test accuracy (seeds 0-4)
        cnnlab train mlp --dataset mnist --recipe lesson   # the notebook's: SGD lr 0.01, batch 20, 50 epochs
        cnnlab train mlp --dataset fashion-mnist --epochs 5 --lr 3e-3
        cnnlab train --resume runs/mlp-mnist               # after Ctrl-C: continue where it stopped
        cnnlab train nets.py:Net --dataset cifar10 --recipe lesson-cnn   # your own nn.Module class, in a file
        cnnlab train resnet18 --dataset imagefolder --data-root photos --weights imagenet --freeze features""",
        _train,
        description="""
        Train MODEL (see `cnnlab models`) on a data set (see `cnnlab datasets`). A recipe sets the optimizer,
        learning rate and its schedule, batch size and epochs; any of them can be overridden. Every epoch the
        model is validated on a held-out part of the training set (--valid-fraction) and the weights with the
        lowest validation loss are kept in best.safetensors; the test set is used once, at the end, on those.
        The run folder gets run.json, metrics.csv, curves.png, confusion.png and samples.png.""",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="model name, e.g. mlp (omit with --resume), or your own network as "
        "FILE.py:Class (its recipe: --recipe MODEL[:RECIPE], e.g. lesson-cnn)",
    )
    add_recipe_options(p)
    p.add_argument("--out", default="runs", help="parent folder of run folders (default: runs)")
    p.add_argument("--name", help="run folder name (default: MODEL-DATASET, numbered if taken)")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue an interrupted run from its last finished epoch (with --data-root if the data set has moved)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --name's folder (refused otherwise)")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes of this machine with torch.distributed (DDP), launched through "
        "torchrun; the batch size stays the global batch. Several machines: run `torchrun "
        "--nnodes ... -m cnnlab train ...` on each (see the README)",
    )

    p = add_command(
        sub,
        "lr-find",
        "the learning-rate range test: loss against learning rate, one short sweep",
        """
        cnnlab lr-find mlp --dataset mnist
        cnnlab lr-find lesson-cnn --dataset cifar10 --optimizer sgd --batch-size 128""",
        _lr_find,
        description="""
        Train MODEL from scratch for up to --steps batches while the learning rate grows from 1e-7 to 10, and
        draw the loss against it (Smith 2017; fastai's lr_find). Too small a rate changes nothing, too large one
        blows the loss up; a tenth of the rate where the loss is lowest is suggested, with the `cnnlab train`
        command that uses it. The recipe's optimizer and batch size are used, so pass the ones you will train with.
        Nothing is saved but the figure.""",
    )
    p.add_argument("model", help="model name, e.g. mlp")
    add_recipe_options(p)
    p.add_argument("--steps", type=int, default=100, help="batches in the sweep (default: %(default)s)")
    p.add_argument("--out", metavar="FILE.png", help="figure (default: lr-find-MODEL-DATASET.png)")

    p = add_command(
        sub,
        "evaluate",
        "test a trained run: loss, overall and per-class accuracy",
        """
        cnnlab evaluate runs/mlp-mnist
        cnnlab evaluate runs/mlp-mnist --split valid --weights last
        cnnlab evaluate runs/mnist-cnn-mnist --perturb rotate=30,translate=0.1   # robustness""",
        _evaluate,
    )
    p.add_argument("run", help="run folder made by `cnnlab train`")
    p.add_argument("--split", choices=["test", "valid"], default="test")
    add_run_weights(p)
    add_data_root(p)
    p.add_argument(
        "--perturb",
        default="",
        metavar="SPEC",
        help="a seeded random transform of every test image first, e.g. rotate=30,translate=0.1 "
        "(same operations as --augment)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --perturb")
    add_trust(p)

    p = add_command(
        sub,
        "predict",
        "classify image files with a trained run (top-k classes)",
        """
        cnnlab predict runs/mlp-mnist test:0 sample:digit7 --top-k 3
        cnnlab predict runs/mlp-mnist my-digit.png
        cnnlab predict --model resnet18 --weights imagenet photo.jpg --top-k 5""",
        _predict,
        description="""
        Classify images of any size or mode: each is converted to what the model was trained on (channels,
        size; for MNIST-style models, dark-on-light images are inverted) and every change is reported.""",
    )
    p.add_argument("run", nargs="?", help="run folder made by `cnnlab train` (none with --model)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help=MODEL_IMAGE_HELP)
    p.add_argument("--top-k", type=int, default=3)
    add_run_weights(p)
    add_trust(p)
    add_model_option(p)

    add_command(sub, "models", "list the models with their parameter counts", "cnnlab models", _models)

    p = add_command(
        sub,
        "augment-preview",
        "a grid of training images beside augmented copies",
        """
        cnnlab augment-preview --dataset cifar10 --augment flip,rotate=10,crop=4
        cnnlab augment-preview --dataset mnist --augment rotate=30,translate=0.1 --count 6""",
        _augment_preview,
        description="""
        See what an --augment spec does before training with it. Operations (applied in the order given):
        flip, rotate=DEGREES, crop=PIXELS, translate=FRACTION, cutout=PIXELS, resized-crop=MIN_AREA; presets:
        cifar, mnist, lesson, photos.""",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--augment", required=True, metavar="SPEC")
    p.add_argument("--data-root")
    p.add_argument("--count", type=int, default=8, help="training images shown (rows)")
    p.add_argument("--copies", type=int, default=5, help="augmented copies of each (columns)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="augment-preview.png")

    p = add_command(
        sub,
        "summary",
        "layer by layer: output shape, parameters, MACs, kernel/stride/padding",
        """
        cnnlab summary lesson-cnn                   # at the model's own input shape
        cnnlab summary resnet18 --input 3x64x64 --classes 10
        cnnlab summary runs/mlp-mnist              # the model of a trained run""",
        _summary,
    )
    p.add_argument("model", help="model name, or a run folder")
    p.add_argument("--input", help="input shape CxHxW (default: the model's own, or the run's)")
    p.add_argument(
        "--classes",
        type=int,
        help="number of classes (default: the run's, or as `cnnlab models` lists "
        "it: 1000 for ImageNet-shaped models, else 10)",
    )
    add_trust(p)

    p = add_command(
        sub,
        "compare",
        "compare runs: one table and one figure of their validation curves",
        """
        cnnlab train mlp --dataset mnist && cnnlab train mnist-cnn --dataset mnist
        cnnlab compare runs/mlp-mnist runs/mnist-cnn-mnist --out mlp-vs-cnn.png""",
        _compare,
    )
    p.add_argument("runs", nargs="+", help="run folders made by `cnnlab train`")
    p.add_argument("--out", default="compare.png", help="figure to write (default: %(default)s)")

    p = add_command(
        sub,
        "datasets",
        "which data sets are found, where, and their sizes",
        """
        cnnlab datasets
        cnnlab datasets mnist --download          # fetch it now (checksum verified)
        cnnlab datasets imagefolder --data-root ~/photos""",
        _datasets,
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"data sets to look for (default: all of {', '.join(DOWNLOADABLE)})",
    )
    p.add_argument("--data-root")
    p.add_argument("--download", action="store_true", help="download the named data sets when not found")


def add_recipe_options(p) -> None:
    """What a training is made of: the data and the run's settings, the recipe and its overrides (train, lr-find).
    The flags are generated from RunConfig's and Recipe's declarations (cnnlab.cli.flags)."""
    run = p.add_argument_group("the data and the run")
    add_flags(run, RunConfig)
    p.set_defaults(device="auto")  # the command line trains on the GPU when there is one
    run.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")
    recipe = p.add_argument_group("the recipe (each flag overrides the named recipe's value)")
    recipe.add_argument(
        "--recipe",
        help="named recipe of the model: default, lesson, or one tuned for a data set "
        "(default: the data set's own recipe if the model has one, else default)",
    )
    add_flags(recipe, Recipe)
    recipe.add_argument(
        "--finetune",
        action="store_true",
        help="with --weights: train every layer, the pretrained ones at a tenth of the rate (the finetune recipe)",
    )


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` less `option VALUE` (or `option=VALUE`): what each launched process runs."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def _train(args) -> int:
    from cnnlab.errors import whole
    from cnnlab.training.distributed import LAUNCHED, ReportedElsewhere, launch

    if whole(args.nproc, "nproc", 1, 1024) > 1 and "WORLD_SIZE" not in os.environ:
        folder, argv = launched_folder(args)
        return launch(args.nproc, argv, folder)
    try:
        return _train_here(args)
    except ReportedElsewhere:
        if os.environ.get(LAUNCHED):  # the launcher says it, once
            return 2
        raise


def launched_folder(args) -> tuple[Path, list[str]]:
    """The run folder of a `--nproc` training, named before the processes start (so that the launcher can say
    where to resume), and the command line each process runs."""
    argv = without_option(args.argv, "--nproc")
    if args.resume:
        return Path(args.resume), argv
    if not args.model:
        raise CnnlabError("name a model to train (see `cnnlab models`), or --resume RUN")
    from cnnlab.training.config import make_config
    from cnnlab.training.folder import new_run_folder

    folder = run_name(args.out, args.name)
    if folder is None:
        if is_file_class(args.model):  # checked here once; each process imports the file itself
            from cnnlab.training.custom import own_config

            config = own_config(class_from(args.model), args.dataset, args.recipe, **_options(args))
        else:
            config = make_config(args.model, args.dataset, args.recipe, **_options(args))
        folder = new_run_folder(args.out, f"{config.model}-{config.dataset}")
        argv = [*argv, "--name", folder.name]
    return folder, argv


def _train_here(args) -> int:
    from cnnlab import api
    from cnnlab.cli.next_steps import next_commands
    from cnnlab.training.distributed import is_main_process

    progress = not args.no_progress
    model = class_from(args.model) if is_file_class(args.model) else args.model
    if args.resume:
        run = api.resume(args.resume, model=model, data_root=args.data_root, progress=progress)
    else:
        if not args.model:
            raise CnnlabError("name a model to train (see `cnnlab models`), or --resume RUN")
        try:
            run = api.train(
                model,
                args.dataset,
                out=args.out,
                recipe=_recipe(args),
                progress=progress,
                folder=run_name(args.out, args.name),
                overwrite=args.overwrite,
                **_options(args),
            )
        except KeyboardInterrupt as stop:
            if is_main_process() and getattr(stop, "saved", None) is False:  # nothing to resume: the same command
                print(f"start again with: cnnlab {shlex.join(args.argv)}")
            raise
    if not is_main_process():  # rank 0 reports for all
        return 0
    record = run.record
    print(
        f"\n{record.model.name} on {record.data.name}: test accuracy {100 * run.test_accuracy:.2f}% "
        f"(best epoch {record.best.epoch}, {record.train_seconds:.0f} s of training)"
    )
    if record.transfer:
        print(
            f"started from {record.transfer.weights} (sha256 {record.transfer.sha256[:12]}...); "
            f"{record.transfer.frozen or 'every layer trained'}"
        )
    print(f"run folder: {run.folder}  (curves.png, confusion.png, samples.png, best.safetensors, run.json)")
    print("\nnext, try:\n" + "\n".join(f"  {line}" for line in next_commands(run)))
    return 0


def _recipe(args) -> str | None:
    """--finetune and --freeze name the transfer recipes unless --recipe names one."""
    if args.finetune and args.freeze:
        raise CnnlabError("--finetune trains every layer and --freeze features only the last: choose one")
    transfer = "finetune" if args.finetune else "frozen" if args.freeze else None
    if args.recipe or not transfer or not args.model:
        return args.recipe
    from cnnlab.models import get_spec

    return transfer if transfer in get_spec(args.model).recipes else None


def run_name(out: str, name: str | None) -> Path | None:
    """`--out/--name`: one folder inside --out, never a path that leads out of it (`..`, `a/b`, `/abs`)."""
    if name is None:
        return None
    if name in ("", ".", "..") or Path(name).name != name or "/" in name or os.sep in name:
        raise CnnlabError(f"--name {name!r}: give a plain folder name, made inside --out ({out}); no '/' or '..'")
    return Path(out) / name


def _options(args) -> dict:
    """The recipe and run options given on the command line (unset ones keep the recipe's values)."""
    options = given(args)
    if getattr(args, "finetune", False):
        options["pretrained_lr_scale"] = 0.1
    if options.get("augment") == "none":
        options["augment"] = ""
    return options


def _lr_find(args) -> int:
    from cnnlab.plots import lr_find_figure, save
    from cnnlab.training.config import make_config
    from cnnlab.training.lr_find import lr_find

    config = make_config(args.model, args.dataset, _recipe(args), **_options(args))
    out = output_path(args.out, f"lr-find-{config.model}-{config.dataset}.png", ".png", "--out")
    found = lr_find(config, steps=args.steps, progress=not args.no_progress)
    lowest = found.losses.index(min(found.losses))
    print(
        f"{len(found.lrs)} steps from {found.lrs[0]:.1e} to {found.lrs[-1]:.1e}; lowest loss "
        f"{found.losses[lowest]:.4f} at {found.lrs[lowest]:.1e}"
    )
    print(
        f"suggested learning rate {found.suggestion:.1e} (the recipe's: {found.recipe_lr:g}); train with:\n"
        f"  cnnlab train {config.model} --dataset {config.dataset} --lr {found.suggestion:.1e}"
    )
    print(f"figure: {save(lr_find_figure(found), out)}")
    return 0


def _evaluate(args) -> int:
    from cnnlab.training.metrics import lesson_table

    predictor = open_predictor(args)
    evaluation = predictor.evaluate(args.split, args.data_root, args.perturb, args.seed)
    if args.perturb:
        print(f"every image perturbed by {args.perturb} (seed {args.seed})\n")
    print(lesson_table(evaluation, predictor.classes, title="Test" if args.split == "test" else "Validation"))
    return 0


def _predict(args) -> int:
    predictor = load_predictor(args)
    images = images_of(args)
    _, notes = predictor.prepare(images)
    for path, changes, top in zip(images, notes, predictor.top_k(images, args.top_k)):
        print(path + "".join(f"  [{note}]" for note in changes))
        for name, value in top:
            shown = f"{value:7.2%}" if not predictor.capsules else f"{value:.3f}"
            print(f"  {name:>20s}  {shown}  {predictor.score_name}")
    return 0


def _models(args) -> int:
    from cnnlab.models import model_table

    print(model_table())
    return 0


def _augment_preview(args) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.data.augment import parse_augment, preview
    from cnnlab.errors import whole
    from cnnlab.plots import augment_preview, save

    spec = parse_augment(args.augment).spec  # a bad spec fails before the data set is read
    count = whole(args.count, "count", 1, 1000)
    data = load_dataset(args.dataset, data_root=args.data_root)
    grid = preview(data.train.pixels(slice(0, count)), spec, args.seed, args.copies)
    print(f"figure: {save(augment_preview(grid, spec), args.out)}")
    return 0


def _summary(args) -> int:
    from cnnlab.models import get_spec
    from cnnlab.models.summary import summarize

    own = own_summary(args)
    if own:
        print(own)
        return 0
    if Path(args.model).is_dir():
        from cnnlab.training.record import RunRecord

        record = RunRecord.load(args.model)
        name, model_args = record.model.name, dict(record.model.args)
    else:
        from cnnlab.models.summary import listed_classes

        spec = get_spec(args.model)
        c, h, _ = spec.default_input  # the classes `cnnlab models` counts with: the same number in both
        name, model_args = args.model, {"in_channels": c, "image_size": h, "num_classes": listed_classes(spec)}
    shape = (model_args["in_channels"], model_args["image_size"], model_args["image_size"])
    if args.input:
        match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", args.input)
        if not match or 0 in (int(match[1]), int(match[2]), int(match[3])):
            raise CnnlabError(f"--input {args.input!r}: give the shape as CxHxW, e.g. 3x32x32 or 3x240x320")
        shape = tuple(int(v) for v in match.groups())
        model_args.update(in_channels=shape[0], image_size=shape[1])
    if args.classes is not None:
        if args.classes < 1:
            raise CnnlabError(f"--classes {args.classes}: must be at least 1")
        model_args["num_classes"] = args.classes
    print(summarize(name, model_args, shape))
    return 0


def _compare(args) -> int:
    from cnnlab.plots import compare_curves, save
    from cnnlab.training.record import RunRecord, compare_table

    records = [RunRecord.load(folder) for folder in args.runs]
    names = [Path(folder).name for folder in args.runs]
    print(compare_table(names, records))
    histories = [[e.__dict__ for e in r.history] for r in records]
    losses = [r.loss_name for r in records]
    if len(set(losses)) > 1:  # say so, on the figure too: a smoothed loss never gets near 0
        names = [f"{name} ({loss})" for name, loss in zip(names, losses)]
        print(
            "note: these runs' losses are of different kinds (" + "; ".join(names) + "): their loss curves are "
            "not comparable, their accuracies are"
        )
    print(f"figure: {save(compare_curves(names, histories), args.out)}")
    return 0


def _datasets(args) -> int:
    from cnnlab.data import load_dataset

    names = args.names or [*DOWNLOADABLE, *(["imagefolder"] if args.data_root else [])]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise CnnlabError(f"unknown data set {unknown[0]!r}; known: {', '.join(DATASETS)}")
    missing = 0
    for name in names:
        try:
            data = load_dataset(name, data_root=args.data_root, download=args.download)
        except CnnlabError as e:
            missing += 1
            print(f"{name:<14} not found" + (f": {e}" if args.names else f" ({str(e).splitlines()[-1]})"))
            continue
        shape = "x".join(map(str, data.shape))
        print(
            f"{name:<14} {len(data.train):>6,} train {len(data.test):>6,} test  {shape:<8} "
            f"{len(data.classes)} classes  {data.source}"
        )
    return 1 if missing and args.names else 0
