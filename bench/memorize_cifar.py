"""Zhang et al.'s Figure 1 on a 5,000-image CIFAR-10 subset: lesson-cnn fits true labels, random labels, shuffled
pixels, random pixels and Gaussian noise; only true labels carry to the test set.

    python bench/memorize_cifar.py --data-root /tmp/cifar-py [--out docs/memorize-cifar10.png] [--from FILE.json]
    python bench/memorize_cifar.py --corrupt none,labels=1 --seed 1 --out /tmp/seed1.png   # one more seed

Targets: the whole figure within ~15 minutes on 2 cores; with random labels, training accuracy >= 99% and test
accuracy within 2 points of 10%; random labels take clearly more steps than true ones to reach 99% running training
accuracy. The recipe is memorize's own (MEMORIZE_RECIPE) unless --optimizer/--lr/... change it. `--from` redraws
the figure from the curves a previous run saved (beside the figure, as .json) without training again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cnnlab.plots import save
from cnnlab.plots.attack import memorize_figure
from cnnlab.training.memorize import FIGURE_1, MEMORIZE_RECIPE, memorize, recipe_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="/tmp/cifar-py")
    parser.add_argument("--model", default="lesson-cnn")
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--corrupt", help="comma-separated, none for the true data (default: all five)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--lr", type=float)
    parser.add_argument("--schedule", choices=["constant", "onecycle", "exponential"])
    parser.add_argument("--decay", type=float)
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--out", default="docs/memorize-cifar10.png")
    parser.add_argument("--from", dest="saved", help="curves saved by an earlier run: draw only")
    args = parser.parse_args()
    recipe = MEMORIZE_RECIPE.replace(
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule, decay=args.decay, epochs=args.max_epochs
    )
    corruptions = FIGURE_1 if args.corrupt is None else [c if c != "none" else "" for c in args.corrupt.split(",")]
    t0 = time.perf_counter()
    if args.saved:
        saved = json.loads(Path(args.saved).read_text())
        curves, described = saved["curves"], saved["recipe"]
    else:
        fitted = memorize(args.model, "cifar10", args.subset, corruptions, recipe, args.seed, data_root=args.data_root)
        curves, described = [c.to_dict() for c in fitted], recipe_line(recipe)
        saved = {"seed": args.seed, "recipe": described, "seconds": time.perf_counter() - t0, "curves": curves}
        Path(args.out).with_suffix(".json").write_text(json.dumps(saved, indent=1))
    print(f"whole figure: {saved['seconds']:.0f} s ({described}, seed {saved['seed']})")
    save(memorize_figure(curves, args.model, "CIFAR-10", args.subset, described), args.out)
    by_label = {c["label"]: c for c in curves}
    for c in curves:
        print(
            f"{c['label']:<16} {len(c['steps']):3d} epochs, {c['steps'][-1]:5d} steps, {c['seconds']:5.0f} s, "
            f"99% at {c['fitted_at']} steps: train {100 * c['train_accuracy']:.2f}%, "
            f"test {100 * c['test_accuracy']:.2f}%"
        )
    random, true = by_label.get("random labels"), by_label.get("true labels")
    if random:
        print(
            f"random labels: train {100 * random['train_accuracy']:.2f}% (target >= 99%), test "
            f"{100 * random['test_accuracy']:.2f}% (target 8-12%)"
        )
    if random and true and random["fitted_at"] and true["fitted_at"]:
        print(
            f"steps to 99% running training accuracy: true {true['fitted_at']}, random {random['fitted_at']} "
            f"({random['fitted_at'] / true['fitted_at']:.1f}x; random should take clearly longer)"
        )


if __name__ == "__main__":
    main()
