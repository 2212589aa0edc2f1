"""Training on several processes with torch.distributed (torchrun, DDP, gloo), on this machine's CPU: the same run
as on one process, two "machines" on the loopback address, a killed process, and a resume on another count."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from conftest import make_mnist
from safetensors.torch import load_file

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]

# One epoch of the MLP through the Python API, dropout and augmentation off (drawn per process), fp32.
EXACT = """
import sys
from cnnlab.training.config import make_config
from cnnlab.training.loop import train
config = make_config(sys.argv[3], "mnist", data_root=sys.argv[2], precision="fp32", epochs=int(sys.argv[4]),
                     batch_size=100, augment="", model_args={"dropout": 0.0} if sys.argv[3] == "mlp" else {})
train(config, sys.argv[1], progress=False)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_mnist(tmp_path_factory.mktemp("ddp-data"), n_train=1000, n_test=200)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(*argv, **kwargs) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a crash shows its stack
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, env=environment, **kwargs
    )


def record(folder) -> dict:
    return json.loads((folder / "run.json").read_text())


def on_one_and_two(tmp_path, data, model: str, epochs: int) -> tuple[str, str]:
    """Train `model` through the API on 1 process (into tmp_path/one) and 2 (tmp_path/two); their outputs."""
    script = tmp_path / "exact.py"
    script.write_text(EXACT)
    one = launch(sys.executable, script, tmp_path / "one", data, model, epochs)
    two = launch(*TORCHRUN, "--standalone", "--nproc-per-node", 2, script, tmp_path / "two", data, model, epochs)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[:4000]  # the ranks' own words come first
    return one.stdout, two.stdout


def test_two_processes_train_exactly_what_one_does(data, tmp_path):
    _, two = on_one_and_two(tmp_path, data, "mlp", 1)
    a, b = load_file(tmp_path / "one" / "last.safetensors"), load_file(tmp_path / "two" / "last.safetensors")
    weights = [k for k in a if not k.startswith("rng.")]
    # Adam divides by the root of its second moment, which magnifies the all-reduce's rounding where that is tiny
    assert weights and all(torch.allclose(a[k], b[k], atol=1e-5) for k in weights)
    first, second = record(tmp_path / "one"), record(tmp_path / "two")
    assert (first["processes"], second["processes"]) == (1, 2)
    assert second["history"][0]["train_loss"] == pytest.approx(first["history"][0]["train_loss"], rel=1e-5)
    assert second["test"]["confusion"] == first["test"]["confusion"]  # test metrics summed over both
    assert "2 processes" in two and two.count("Test accuracy (overall)") == 1  # rank 0 alone prints


def test_batch_norm_model_reaches_the_same_accuracy(data, tmp_path):
    on_one_and_two(tmp_path, data, "mnist-cnn", 5)
    accuracy = [record(tmp_path / name)["test"]["accuracy"] for name in ("one", "two")]
    # batch statistics come from each process's half batch, so the runs differ: by noise only (200 test images,
    # 1,000 training ones, 5 epochs: 90.0% and 98.5% were seen)
    assert min(accuracy) > 0.85 and abs(accuracy[0] - accuracy[1]) < 0.1, accuracy


def test_two_machines_on_the_loopback_address_train_one_run(data, tmp_path):
    port = free_port()
    nodes = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "-m",
                "cnnlab",
                "train",
                "mlp",
                "--data-root",
                str(data),
                "--epochs",
                "2",
                "--no-progress",
                "--out",
                str(tmp_path),
                "--name",
                "together",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    run = record(tmp_path / "together")
    assert run["status"] == "finished" and run["processes"] == 2 and len(run["history"]) == 2
    assert "test accuracy" in outputs[0][0] and "test accuracy" not in outputs[1][0]  # node 0's rank 0 reports


def test_a_killed_process_stops_the_others_and_resume_finishes_on_one(tmp_path):
    data = make_mnist(tmp_path / "data", n_train=6000, n_test=200)
    folder = tmp_path / "runs" / "killed"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnnlab",
            "train",
            "mlp",
            "--nproc",
            "2",
            "--data-root",
            str(data),
            "--epochs",
            "40",
            "--no-progress",
            "--out",
            str(folder.parent),
            "--name",
            folder.name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not ((folder / "run.json").is_file() and record(folder)["history"]):
        time.sleep(0.5)
    workers = [
        int(pid)
        for pid in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    ]
    assert len(workers) == 2, workers  # torchrun's two training processes
    os.kill(max(workers), signal.SIGKILL)  # one rank dies mid-epoch
    killed_at = time.time()
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode != 0 and time.time() - killed_at < 60
    # one line, from the launcher: who died and how, and the folder to resume (the survivor and torchrun are silent)
    assert err.strip().splitlines() == [
        f"cnnlab: error: training process 1 of 2 was killed by SIGKILL; the last "
        f"finished epoch is kept: continue with `cnnlab train --resume {folder}`"
    ], err
    done = len(record(folder)["history"])
    assert 1 <= done < 40
    resumed = launch(sys.executable, "-m", "cnnlab", "train", "--resume", folder, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = record(folder)
    assert run["status"] == "finished" and [e["epoch"] for e in run["history"]] == list(range(1, 41))
    assert run["processes"] == 1 and f"resuming {folder} after epoch {done}" in resumed.stdout


SHARED = """
import sys
from cnnlab.data import load_dataset
from cnnlab.data.datasets import split
data = load_dataset("imagefolder", data_root=sys.argv[1], test_fraction=0.25)
train, valid = split(data.train, 0.2, 0)
maps = open("/proc/self/maps").read()
print(sys.argv[2] in maps, train.storage.data_ptr() == data.train.storage.data_ptr(), len(train), len(valid))
"""


def test_an_image_folder_is_decoded_once_and_memory_mapped_by_every_process(tmp_path, monkeypatch):
    from PIL import Image

    from cnnlab.data import load_dataset
    from cnnlab.data.datasets import _folder_cache_path

    for k in range(40):
        (tmp_path / "photos" / f"c{k % 4}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 20), (60 * (k % 4), 10 * k, 90)).save(tmp_path / "photos" / f"c{k % 4}" / f"{k}.png")
    load_dataset("imagefolder", data_root=tmp_path / "photos")  # decodes into the cache file
    cache = _folder_cache_path(tmp_path / "photos", None, None)
    written = cache.stat().st_mtime_ns
    script = tmp_path / "shared.py"
    script.write_text(SHARED)
    runs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "photos"), str(cache)],
            text=True,
            stdout=subprocess.PIPE,
            env={**os.environ},
        )
        for _ in range(2)
    ]
    for process in runs:
        mapped, same_storage, n_train, n_valid = process.communicate(timeout=120)[0].split()
        assert mapped == "True" and same_storage == "True" and (int(n_train), int(n_valid)) == (24, 6)
    assert cache.stat().st_mtime_ns == written  # read by both, decoded by neither
