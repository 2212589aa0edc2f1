"""`cnnlab attack` (fool a trained run: accuracy against eps) and `cnnlab memorize` (fit random labels). A thin
shell over `cnnlab.inspect.attack` and `cnnlab.training.memorize`; torch is imported inside the handlers only."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.cli.base import add_command, add_data_root, add_run_weights, default_name, output_path
from cnnlab.cli.flags import add_flags
from cnnlab.data import DATASETS
from cnnlab.errors import CnnlabError
from cnnlab.models.recipe import ATTACKS, Recipe


def register(sub) -> None:
    p = add_command(
        sub,
        "attack",
        "adversarial examples: a trained run's test accuracy under attack, per eps",
        """
        cnnlab attack runs/mnist-cnn-mnist --method fgsm --eps 0,0.05,0.1,0.2
        cnnlab attack runs/mnist-cnn-mnist --method pgd --steps 40 --eps 0.1,0.3 --limit 1000
        cnnlab attack runs/lesson-cnn-cifar10 --method pgd --eps 0.01,0.03 --target likely-wrong""",
        _attack,
        description="""
        Change every test image by at most eps (in pixel units: 0.1 is a tenth of the range from black to white)
        so that the model gets it wrong, and report the accuracy left for each eps (eps 0: the clean accuracy).
        fgsm: one step along the sign of the loss's gradient (Goodfellow et al. 2015); pgd: --steps smaller steps
        from a random start, kept within eps of the image (Madry et al. 2018; pgd-l2: eps is the L2 length of the
        whole change). --target makes the model answer a chosen class (or each image's most likely wrong one).
        Writes RUN/attacks/NAME.json (the numbers) and NAME.png (accuracy against eps, and a gallery of clean
        images, the change magnified, and the adversarial images with what the model says).""",
    )
    p.add_argument("run", help="run folder made by `cnnlab train`")
    p.add_argument("--method", choices=ATTACKS, default="pgd", help="default: %(default)s")
    p.add_argument(
        "--eps",
        default="0,0.02,0.05,0.1,0.2",
        metavar="E,E,...",
        help="attack sizes in pixel units 0..1, comma-separated (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, default=10, help="pgd: steps (default: %(default)s)")
    p.add_argument("--step-size", type=float, help="pgd: the size of a step (default: 2.5 eps / steps)")
    p.add_argument(
        "--no-random-start",
        dest="random_start",
        action="store_const",
        const=False,
        default=None,
        help="pgd: start at the image itself, not at a random point within eps of it",
    )
    p.add_argument(
        "--target",
        metavar="CLASS",
        help="targeted: a class name or index, or likely-wrong (each image's most likely wrong class)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="attack only the first N test images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    add_run_weights(p)
    add_data_root(p)
    p.add_argument("--no-progress", action="store_true")

    p = add_command(
        sub,
        "memorize",
        "can a CNN fit random labels? training curves on true and corrupted data",
        """
        cnnlab memorize lesson-cnn --dataset cifar10 --subset 5000
        cnnlab memorize mnist-cnn --dataset mnist --subset 1000 --corrupt labels=1,labels=0.5""",
        _memorize,
        description="""
        Zhang et al. 2017, "Understanding deep learning requires rethinking generalization", Figure 1: the same
        network trained from scratch on true labels, on random labels (labels=1), on shuffled pixels (one
        permutation for all images), on random pixels (one per image) and on Gaussian noise, each until it fits
        its training set. It fits all of them, true labels first (each curve's step at 99% running training
        accuracy is marked and printed); the test accuracy of each says what it learned. The recipe is the paper's
        optimizer: SGD with momentum 0.9, lr 0.01, constant; no augmentation, dropout or weight decay: nothing
        stands in memorization's way. --optimizer, --lr, ... change it as they do for `cnnlab train`.""",
    )
    p.add_argument("model", help="model name, e.g. lesson-cnn")
    p.add_argument("--dataset", choices=DATASETS, help="default: the model's own (cifar10, mnist)")
    p.add_argument("--data-root")
    p.add_argument("--subset", type=int, default=5000, metavar="N", help="training images (default: %(default)s)")
    p.add_argument(
        "--corrupt",
        metavar="SPEC,...",
        help="which corruptions, comma-separated (default: none, labels=1, shuffled-pixels, random-pixels, gaussian)",
    )
    # the recipe's fields, named as `cnnlab train` names them; unset: memorize's own recipe (MEMORIZE_RECIPE)
    p.add_argument("--max-epochs", type=int, help="per corruption (default: 100)")
    # memorize's own recipe, MEMORIZE_RECIPE (training/memorize.py imports torch; a test holds these to it)
    recipe = {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01, "schedule": "constant", "decay": 0.96}
    add_flags(p.add_argument_group("the training recipe (the paper's SGD)"), Recipe, defaults=recipe)
    p.add_argument("--batch-size", type=int, help="default: 128")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        metavar="FILE.png",
        help="figure (default: memorize-MODEL-DATASET.png); the curves go beside it as .json",
    )
    p.add_argument("--no-progress", action="store_true")


def parse_eps(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not 0 <= v <= 1 for v in values):
        raise CnnlabError(f"--eps {text!r}: give sizes in pixel units from 0 to 1, comma-separated, e.g. 0,0.05,0.1")
    return values


def _attack(args) -> int:
    from cnnlab.errors import whole
    from cnnlab.files import write_text
    from cnnlab.inspect.attack import clean_note, robustness
    from cnnlab.plots import save
    from cnnlab.predict import Predictor

    eps = parse_eps(args.eps)
    if args.limit is not None:
        whole(args.limit, "--limit", 1)
    predictor = Predictor.from_run(args.run, args.weights)
    report = robustness(
        predictor,
        args.method,
        eps,
        args.steps,
        args.step_size,
        args.random_start,
        args.target,
        args.limit,
        args.seed,
        args.data_root,
        progress=not args.no_progress,
    )
    steps = f"{args.steps}" if args.method != "fgsm" else ""
    name = default_name(args.method + steps, args.target and f"to-{args.target}", args.weights != "best" and "last")
    folder = Path(args.run) / "attacks"
    folder.mkdir(exist_ok=True)
    write_text(folder / f"{name}.json", json.dumps(report.to_dict(), indent=2))
    save(report.figure, folder / f"{name}.png")
    print(f"{args.method}{'-' + steps if steps else ''} on {report.images:,} test images of {Path(args.run).name}")
    print("\n".join(report.lines()))
    note = clean_note(report, predictor.record, args.weights)
    if note:
        print(note)
    print(f"written: {folder / name}.json, {folder / name}.png")
    return 0


def _memorize(args) -> int:
    from cnnlab.errors import whole
    from cnnlab.files import write_text
    from cnnlab.plots import save
    from cnnlab.plots.attack import memorize_figure
    from cnnlab.training.config import default_dataset
    from cnnlab.training.memorize import FIGURE_1, MEMORIZE_RECIPE, memorize, recipe_line

    dataset = args.dataset or default_dataset(args.model)
    corruptions = (
        FIGURE_1
        if args.corrupt is None
        else tuple("" if s.strip() == "none" else s.strip() for s in args.corrupt.split(","))
    )
    if args.max_epochs is not None:
        whole(args.max_epochs, "--max-epochs", 1, 100_000)
    recipe = MEMORIZE_RECIPE.replace(
        epochs=args.max_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        schedule=args.schedule,
        decay=args.decay,
    )
    out = output_path(args.out, f"memorize-{args.model}-{dataset}.png", ".png", "--out")
    curves = memorize(
        args.model, dataset, args.subset, corruptions, recipe, args.seed, args.data_root, progress=not args.no_progress
    )
    data = [c.to_dict() for c in curves]
    write_text(
        out.with_suffix(".json"),
        json.dumps(
            {
                "model": args.model,
                "dataset": dataset,
                "subset": args.subset,
                "seed": args.seed,
                "recipe": recipe.to_dict(),
                "curves": data,
            },
            indent=2,
        ),
    )
    figure = memorize_figure(data, args.model, dataset, args.subset, recipe_line(recipe))
    print(f"figure: {save(figure, out)}")
    return 0
