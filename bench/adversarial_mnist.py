"""Adversarial examples on real MNIST: how much a plain mnist-cnn loses to FGSM and PGD, how much an adversarially
trained one keeps, and what a PGD step costs next to a plain forward + backward of the model.

Train the two runs first (the second is the same network trained on fast-FGSM batches, Wong et al. 2020):

    cnnlab train mnist-cnn --dataset mnist --data-root /work/shared/data --name mnist-default
    cnnlab train mnist-cnn --dataset mnist --data-root /work/shared/data --recipe quick --label-smoothing 0 \
        --adversarial fgsm --adv-eps 0.15 --name mnist-adv

then:

    python bench/adversarial_mnist.py runs/mnist-default runs/mnist-adv [--limit 10000] [--speed-only | --no-speed]

Targets: the adversarially trained run keeps >= 90% under PGD-20 at eps 0.1, losing <= 1.5 points of clean accuracy;
one PGD-10 step costs <= 1.3x a forward + backward of the model (the same batch, measured in this run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch.nn.functional as F

import cnnlab
from cnnlab.training.adversarial import Attack, InPixels, perturb

PLAIN = [("fgsm", 1, [0.1]), ("pgd", 40, [0.1, 0.3])]  # (method, steps, eps) on the plain run
ROBUST = [("fgsm", 1, [0.1]), ("pgd", 20, [0.1]), ("pgd", 40, [0.1, 0.3])]


def attack_table(folder: str, attacks, limit: int | None) -> dict:
    run = cnnlab.load(folder)
    rows = {"clean": run.attack("fgsm", [0.0], limit=limit, progress=False).results[0]["accuracy"]}
    for method, steps, eps in attacks:
        t0 = time.perf_counter()
        report = run.attack(method, eps, steps=steps, limit=limit, progress=False)
        for r in report.results:
            rows[f"{method}-{steps if method != 'fgsm' else ''} eps {r['eps']:g}".replace("- ", " ")] = r["accuracy"]
        print(f"  {method} ({steps} steps) took {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def step_cost(folder: str, batch: int = 256, repeats: int = 7) -> tuple[float, float]:
    """(median seconds of one forward + backward of the training loss, median seconds per PGD-10 step), both on
    the same batch of test images, interleaved so that a busy machine slows both alike."""
    run = cnnlab.load(folder)
    predictor = run.predictor
    test = predictor.split("test")
    pixels, labels = test.pixels(slice(0, batch)).float() / 255, test.labels[:batch]
    model = predictor.model.eval()
    x = predictor.preprocess.normalize(test.pixels(slice(0, batch)))
    pixel_model = InPixels(model, predictor.preprocess.mean, predictor.preprocess.std)
    attack = Attack("pgd", 0.1, steps=10)

    def plain():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()

    def pgd():
        for p in model.parameters():
            p.requires_grad_(False)
        perturb(pixel_model, pixels, labels, attack)
        for p in model.parameters():
            p.requires_grad_(True)

    plain(), pgd()
    plains, pgds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plain()
        plains.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pgd()
        pgds.append((time.perf_counter() - t0) / attack.steps)
    return statistics.median(plains), statistics.median(pgds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plain", help="mnist-cnn's default run folder")
    parser.add_argument("robust", nargs="?", help="the adversarially trained run folder")
    parser.add_argument("--limit", type=int, help="test images attacked (default: all 10,000)")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="accuracies only")
    args = parser.parse_args()
    if not args.no_speed:
        plain_s, pgd_s = step_cost(args.plain)
        print(
            f"forward + backward, batch 256: {1000 * plain_s:.1f} ms; one PGD-10 step: {1000 * pgd_s:.1f} ms "
            f"({pgd_s / plain_s:.2f}x; target <= 1.3x)",
            flush=True,
        )
    if args.speed_only:
        return
    tables = {args.plain: attack_table(args.plain, PLAIN, args.limit)}
    if args.robust:
        tables[args.robust] = attack_table(args.robust, ROBUST, args.limit)
    for folder, rows in tables.items():
        print(f"{folder}:")
        for name, accuracy in rows.items():
            print(f"  {name:<18} {100 * accuracy:6.2f}%")
    if args.robust:
        clean_lost = 100 * (tables[args.plain]["clean"] - tables[args.robust]["clean"])
        kept = 100 * tables[args.robust]["pgd-20 eps 0.1"]
        print(
            f"adversarially trained: {kept:.2f}% under PGD-20 at eps 0.1 (target >= 90%), "
            f"{clean_lost:.2f} points of clean accuracy lost (target <= 1.5)"
        )


if __name__ == "__main__":
    main()
