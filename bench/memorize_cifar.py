"""Zhang et al.'s Figure 1 on a 5,000-image CIFAR-10 subset: lesson-cnn fits true labels, random labels, shuffled
pixels, random pixels and Gaussian noise; only true labels carry to the test set.

    python bench/memorize_cifar.py --data-root /tmp/cifar-py [--out docs/memorize-cifar10.png] [--from FILE.json]

Targets: the whole figure within ~15 minutes on 2 cores; with random labels, training accuracy >= 99% and test
accuracy within 2 points of 10%; random labels take more steps to fit than true ones. `--from` redraws the figure
from the curves a previous run saved (beside the figure, as .json) without training again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cnnlab.plots import save
from cnnlab.plots.attack import memorize_figure
from cnnlab.training.memorize import memorize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="/tmp/cifar-py")
    parser.add_argument("--model", default="lesson-cnn")
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--out", default="docs/memorize-cifar10.png")
    parser.add_argument("--from", dest="saved", help="curves saved by an earlier run: draw only")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.saved:
        curves = json.loads(Path(args.saved).read_text())
    else:
        curves = [c.to_dict() for c in memorize(args.model, "cifar10", args.subset, data_root=args.data_root)]
        Path(args.out).with_suffix(".json").write_text(json.dumps(curves, indent=1))
    print(f"whole figure: {time.perf_counter() - t0:.0f} s")
    save(memorize_figure(curves, args.model, "CIFAR-10", args.subset), args.out)
    by_label = {c["label"]: c for c in curves}
    for c in curves:
        print(
            f"{c['label']:<16} {len(c['steps']):3d} epochs, {c['steps'][-1]:5d} steps, {c['seconds']:5.0f} s: "
            f"train {100 * c['train_accuracy']:.2f}%, test {100 * c['test_accuracy']:.2f}%"
        )
    random, true = by_label.get("random labels"), by_label.get("true labels")
    if random:
        print(
            f"random labels: train {100 * random['train_accuracy']:.2f}% (target >= 99%), test "
            f"{100 * random['test_accuracy']:.2f}% (target 8-12%)"
        )
    if random and true:
        print(f"steps to fit: true {true['steps'][-1]}, random {random['steps'][-1]} (random should take longer)")


if __name__ == "__main__":
    main()
