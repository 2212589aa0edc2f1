"""Training throughput and peak memory of cnnlab's CapsNet against a straightforward one (capsnet_reference.py).

    python bench/capsnet_throughput.py [--batch 128] [--steps 10] [--threads N]

Each configuration runs in a fresh subprocess so that its peak memory is its own. Peak memory is the process's
high-water mark of resident memory (getrusage ru_maxrss) at the end, minus the mark taken after importing torch and
making the batch: what is left is the model, its gradients, Adam's state and one training step's activations.
(tracemalloc cannot do this: it only sees Python's own allocator, not torch's.)

Both models train on the same random batch with Adam; the data does not change the cost of a step. The machine may
be shared, so read the ratio rather than the absolute numbers, and compare runs only with the load average printed.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {  # name: (model, bf16 autocast)
    "reference fp32": ("reference", False),
    "cnnlab fp32": ("cnnlab", False),
    "reference bf16": ("reference", True),
    "cnnlab bf16": ("cnnlab", True),  # cnnlab's fast settings
}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def worker(config: str, batch: int, warmup: int, steps: int, threads: int | None) -> dict:
    """Time `steps` training steps after `warmup` ones; runs in its own process."""
    import torch
    from capsnet_reference import ReferenceCapsNet  # bench/ is on sys.path: it holds this script

    from cnnlab.models.capsnet import CapsNet

    if threads:
        torch.set_num_threads(threads)
    model_name, bf16 = CONFIGS[config]
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    baseline = peak_mb()
    model = ReferenceCapsNet() if model_name == "reference" else CapsNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch / seconds, "s_per_step": seconds / steps, "peak_mb": peak_mb() - baseline}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.warmup, args.steps, args.threads)))
        return

    print(
        f"batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps per model, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    results = {}
    for config in CONFIGS:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            config,
            "--batch",
            str(args.batch),
            "--warmup",
            str(args.warmup),
            "--steps",
            str(args.steps),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        results[config] = r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"{config:16s} {r['images_per_s']:7.1f} images/s  {r['s_per_step']:6.2f} s/step  "
            f"peak memory {r['peak_mb']:6.0f} MB",
            flush=True,
        )
    for ours, theirs in [
        ("cnnlab fp32", "reference fp32"),
        ("cnnlab bf16", "reference bf16"),
        ("cnnlab bf16", "reference fp32"),
    ]:
        r, ref = results[ours], results[theirs]
        print(
            f"{ours} / {theirs}: throughput x{r['images_per_s'] / ref['images_per_s']:.2f}, "
            f"peak memory x{r['peak_mb'] / ref['peak_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
