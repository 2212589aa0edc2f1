"""Real disk faults, on a real small file system: a tmpfs that fills up, then one mounted read-only. Every command
says so in one line and exits non-zero, and the epochs already finished stay resumable.

Mounting needs root (as in CI's container); elsewhere these tests are skipped, and the skip says why."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess

import pytest

from cnnlab.cli import main

MB = 1 << 20


@contextlib.contextmanager
def tmpfs(path, size_mb: float):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={int(size_mb * MB)}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if os.geteuid() != 0 or mounted.returncode != 0:
        pytest.skip(
            f"NO TMPFS: cannot mount a small file system here ({mounted.stderr.strip() or 'not root'}); "
            "the real full-disk and read-only tests did not run"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def train(root, out, *more) -> list[str]:
    return [
        "train",
        "mlp",
        "--data-root",
        str(root),
        "--batch-size",
        "64",
        "--precision",
        "fp32",
        "--no-progress",
        "--out",
        str(out),
        "--name",
        "run",
        *more,
    ]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnlab: error: ") and "Traceback" not in err, err
    return err


def test_a_disk_that_fills_up_stops_in_one_line_and_the_run_resumes(mnist_root, tmp_path, capsys):
    # mlp's checkpoint: last.safetensors (weights, best weights, Adam's two moments) ~10.7 MB, best ~2.7 MB. 20 MB
    # holds epoch 1; epoch 2's new checkpoint, written beside the old one until the rename, does not fit.
    disk = tmp_path / "disk"
    with tmpfs(disk, 20):
        assert main(train(mnist_root, disk, "--epochs", "3")) == 2
        err = one_line_error(capsys)
        assert "last.safetensors: no space left on the device for this 11 MB checkpoint; free at least " in err
        assert f"cnnlab train --resume {disk / 'run'}" in err
        asked = int(re.search(r"free at least (\d+) MB more", err)[1])
        folder = disk / "run"
        record = json.loads((folder / "run.json").read_text())
        assert len(record["history"]) == 1  # epoch 1 committed, epoch 2 not
        assert not list(folder.glob(".*.tmp"))  # nothing half-written left behind
        remount(disk, f"size={(20 + asked) * 1_000_000}")  # the user frees just what was asked...
        assert main(["train", "--resume", str(folder), "--no-progress"]) == 0  # ...and that is enough
        record = json.loads((folder / "run.json").read_text())
        assert record["status"] == "finished" and [e["epoch"] for e in record["history"]] == [1, 2, 3]


def test_read_only_outputs_are_one_line_before_any_work(mnist_root, tmp_path, capsys):
    disk = tmp_path / "disk"
    with tmpfs(disk, 60):
        assert main(train(mnist_root, disk, "--epochs", "1")) == 0
        capsys.readouterr()
        folder = disk / "run"
        before = (folder / "last.safetensors").read_bytes()
        remount(disk, "ro")
        picture = tmp_path / "seven.png"
        shutil.copy(folder / "samples.png", picture)
        commands = [
            ["train", "--resume", str(folder), "--epochs", "2", "--no-progress"],  # refused before training
            train(mnist_root, disk, "--epochs", "1", "--overwrite"),
            ["explain", str(folder), "--method", "filters", "--out", str(disk / "filters.png")],
            ["compare", str(folder), str(folder), "--out", str(disk / "compare.png")],
            ["filter", "sample:city", "--kernel", "sobel-x", "--out", str(disk / "city.png")],
            [
                "filter",
                "sample:city",
                "--kernel",
                "sobel-x",
                "--out",
                str(tmp_path / "ok.png"),
                "--save-array",
                str(disk / "city.npy"),
            ],
            ["interpret", str(folder)],  # writes into the run folder
        ]
        for argv in commands:
            assert main(argv) == 2, argv
            err = one_line_error(capsys)
            assert "cannot write there" in err and str(disk) in err, (argv, err)
        remount(disk, "rw")
        assert (folder / "last.safetensors").read_bytes() == before  # the run is as it was
        assert main(["train", "--resume", str(folder), "--epochs", "2", "--no-progress"]) == 0
