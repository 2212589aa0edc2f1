"""An MLP epoch's time beside busy processes: does training keep a fair share of the cores, or collapse?

    python bench/epoch_under_load.py                       # each setting alone, then beside 2 busy loops
    python bench/epoch_under_load.py --busy 2 --repeats 3 --settings default,one-thread,cnnlab

Each measurement is a fresh process pinned to the same cores as the busy loops (`python -c "while True: pass"`),
training the mnist MLP recipe's steps (AdamW, batch 512) on --images random 28x28 images for one epoch after one
warm-up epoch. Settings: `default` (torch imported first: its own threads and OpenMP wait policy), `one-thread`,
`passive` (OMP_WAIT_POLICY=PASSIVE by hand), `cnnlab` (cnnlab imported first, as its command line does).
`uptime` is printed before each block, since on a shared machine "idle" is whatever the others leave.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
setting, images = sys.argv[1], int(sys.argv[2])
if setting == "cnnlab":
    import cnnlab                   # first, as the command line does: before torch loads OpenMP
import torch
from cnnlab.models import create_model
from cnnlab.training.config import make_config
from cnnlab.training.optimizer import make_optimizer
from cnnlab.training.metrics import loss_and_scores
if setting == "one-thread":
    torch.set_num_threads(1)
if setting == "cnnlab":
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
torch.manual_seed(0)
config = make_config("mlp", "mnist")
model = create_model("mlp")
optimizer = make_optimizer(config.recipe, model)
x_all, y_all = torch.randn(images, 1, 28, 28), torch.randint(0, 10, (images,))

def epoch():
    start = time.perf_counter()
    for i in range(0, len(y_all), 512):
        loss, _ = loss_and_scores(model, x_all[i:i + 512], y_all[i:i + 512])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start

epoch()
print(json.dumps({"seconds": epoch(), "threads": torch.get_num_threads()}))
"""


def one_epoch(setting: str, cores: set[int], images: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if setting == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, setting, str(images)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def busy_loops(count: int, cores: set[int]) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.sched_setaffinity(0, cores))
        for _ in range(count)
    ]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=2, help="busy loops beside the training (default: 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", default="default,one-thread,cnnlab")
    parser.add_argument("--images", type=int, default=48000, help="images in the epoch (default: MNIST's 48,000)")
    parser.add_argument("--cores", default="0,1", help="the cores everything is pinned to (default: 0,1)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # `timeout` too stops the busy loops (finally)
    cores = {int(c) for c in args.cores.split(",")}
    settings = args.settings.split(",")
    results: dict[tuple[str, int], list[float]] = {}
    for busy in (0, args.busy):
        print(f"-- beside {busy} busy loop(s); {uptime()}", flush=True)
        loops = busy_loops(busy, cores)
        try:
            time.sleep(1 if busy else 0)
            for _ in range(args.repeats):  # settings interleaved: a change in the others' load hits all
                for setting in settings:
                    found = one_epoch(setting, cores, args.images)
                    results.setdefault((setting, busy), []).append(found["seconds"])
                    print(f"   {setting:<11} {found['seconds']:7.2f} s  ({found['threads']} threads)", flush=True)
        finally:
            for loop in loops:
                loop.kill()
    print(f"\nmedian epoch seconds on cores {sorted(cores)} ({args.repeats} repeats); {uptime()}")
    for setting in settings:
        alone = statistics.median(results[(setting, 0)])
        loaded = statistics.median(results[(setting, args.busy)])
        print(
            f"   {setting:<11} alone {alone:6.2f} s   beside {args.busy} busy {loaded:6.2f} s   x{loaded / alone:.1f}"
        )


if __name__ == "__main__":
    main()
