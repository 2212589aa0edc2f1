"""Whole-process start-up of the command line, two source trees side by side: `cnnlab --help`, `cnnlab train
--help` and a one-kernel `cnnlab filter`. Each command runs with PYTHONPATH=TREE/src, the two trees interleaved
(their order alternating) so that a busy machine slows both alike and the ratio stays meaningful; CPU time (user
+ system) shows what a run costs on an idle machine. Medians of --repeat runs.

    .venv/bin/python bench/cli_startup.py OLD_TREE NEW_TREE [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "cnnlab --help": ["--help"],
    "cnnlab train --help": ["train", "--help"],
    "cnnlab filter": ["filter", "sample:city", "--kernel", "sobel-x", "--out", "{out}/x.png"],
}


def seconds(tree: Path, words: list[str], out: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one `python -m cnnlab ...` run on `tree`'s sources."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    command = [sys.executable, "-m", "cnnlab", *(w.format(out=out) for w in words)]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, env=env, cwd=out, check=True, stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="source tree measured first (e.g. a worktree of main)")
    parser.add_argument("new", type=Path, help="source tree compared with it")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        times = {(name, tree): [] for name in COMMANDS for tree in trees}
        for words in COMMANDS.values():
            for tree in trees.values():  # one unmeasured run each: Python's bytecode caches written
                seconds(tree, words, out)
        for i in range(args.repeat):
            for name, words in COMMANDS.items():
                for tree in list(trees)[:: 1 if i % 2 == 0 else -1]:
                    times[name, tree].append(seconds(trees[tree], words, out))
    print(f"medians of {args.repeat} runs; old: {trees['old']}, new: {trees['new']}")
    print(
        f"{'command':<22} {'old wall':>9} {'new wall':>9} {'new/old':>8}   {'old cpu':>8} {'new cpu':>8} {'new/old':>8}"
    )
    for name in COMMANDS:
        old_wall, old_cpu = (statistics.median(t[k] for t in times[name, "old"]) for k in (0, 1))
        new_wall, new_cpu = (statistics.median(t[k] for t in times[name, "new"]) for k in (0, 1))
        print(
            f"{name:<22} {old_wall:8.3f}s {new_wall:8.3f}s {new_wall / old_wall:8.2f}   "
            f"{old_cpu:7.3f}s {new_cpu:7.3f}s {new_cpu / old_cpu:8.2f}"
        )


if __name__ == "__main__":
    main()
