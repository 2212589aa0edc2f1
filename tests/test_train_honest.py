"""The training side of 'the same number everywhere' and 'nothing lost': evaluate reproduces the training's own
test exactly, a run is listed from its first second, the commands printed after Ctrl-C work as printed, the
recipe's defaults are the measured ones, and a full disk asks for what the run really needs."""

from __future__ import annotations

import json
import os

import pytest
import torch

from cnnlab.cli import main
from cnnlab.training import loop
from cnnlab.training.config import make_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("model, precision", [("lesson-cnn", "auto"), ("mlp", "bf16"), ("mlp", "fp32")])
def test_evaluate_reproduces_the_training_test_to_the_last_digit(tmp_path, model, precision, capsys):
    # conv models are trained and tested channels-last, and bf16 where the CPU is fast at it: evaluate must too
    from conftest import make_cifar, make_mnist

    import cnnlab

    root = (
        make_cifar(tmp_path / "data", per_batch=40)
        if model == "lesson-cnn"
        else make_mnist(tmp_path / "data", n_train=300, n_test=120)
    )
    dataset = "cifar10" if model == "lesson-cnn" else "mnist"
    run = cnnlab.train(
        model,
        dataset,
        data_root=str(root),
        epochs=1,
        batch_size=32,
        precision=precision,
        out=tmp_path / "runs",
        progress=False,
        log=lambda line: None,
    )
    again = run.evaluate()
    assert again.loss == run.record.test.loss
    assert again.confusion.tolist() == run.record.test.confusion
    assert main(["evaluate", str(run.folder)]) == 0
    assert f"Test loss: {run.record.test.loss:.6f}" in capsys.readouterr().out


def test_cifar_fast_holds_out_what_its_measured_figures_used():
    assert make_config("cifar-fast", "cifar10").valid_fraction == 0.04
    assert make_config("cifar-fast", "cifar10", valid_fraction=0.2).valid_fraction == 0.2
    assert make_config("mlp", "mnist").valid_fraction == 0.2
    from cnnlab.cli import build_parser

    args = build_parser().parse_args(["train", "cifar-fast", "--dataset", "cifar10"])
    assert args.valid_fraction is None  # the command line's default is the recipe's


def test_a_new_run_is_listed_from_its_first_second_and_its_status_is_an_enum(mnist_root, tmp_path, monkeypatch):
    from cnnlab.training.record import RunRecord, Status

    seen = []
    real = loop.train_epoch

    def look_first(run, batches, epoch, progress):
        if epoch == 1:
            seen.append(RunRecord.load(run.folder))
        return real(run, batches, epoch, progress)

    monkeypatch.setattr(loop, "train_epoch", look_first)
    config = make_config("mlp", "mnist", data_root=str(mnist_root), epochs=1, batch_size=64, precision="fp32")
    loop.train(config, tmp_path / "run", progress=False, log=lambda line: None)
    assert seen[0].status == Status.RUNNING and seen[0].epochs_done == 0 and seen[0].history == []
    assert RunRecord.load(tmp_path / "run").status is Status.FINISHED
    assert {s.value for s in Status} == {"running", "interrupted", "diverged", "finished"}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"


def test_ctrl_c_prints_commands_that_keep_the_users_flags(mnist_root, tmp_path, monkeypatch, capsys):
    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    argv = [
        "train",
        "mlp",
        "--data-root",
        str(mnist_root),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--no-progress",
        "--out",
        "elsewhere",
        "--name",
        "my run",
    ]
    monkeypatch.setattr(loop, "train_epoch", ctrl_c)
    assert main(argv) == 130
    out = capsys.readouterr().out
    assert f"start again with: cnnlab train mlp --data-root {mnist_root} --epochs 2" in out
    assert "--out elsewhere --name 'my run'" in out and not (tmp_path / "elsewhere" / "my run").exists()

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    real = loop.train_epoch

    def ctrl_c_in_epoch_2(run, batches, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(run, batches, epoch, progress)

    monkeypatch.setattr(loop, "train_epoch", ctrl_c_in_epoch_2)
    assert main(argv) == 130
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"continue with: cnnlab train --resume 'elsewhere/my run' --data-root {mnist_root}"
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "elsewhere/my run", "--data-root", str(mnist_root), "--no-progress"]) == 0


def test_a_full_disk_asks_for_the_space_the_run_needs(tmp_path, monkeypatch):
    from cnnlab.training import checkpoint

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "last.safetensors").write_bytes(b"x" * 11_000_000)  # the old checkpoint, replaced next
    free = 3_000_000

    class Stats:
        f_bavail, f_frsize = free, 1

    monkeypatch.setattr(os, "statvfs", lambda path: Stats)
    # writing best.safetensors (3 MB) failed: what must be free is the largest file written beside its old self
    message = checkpoint.no_space(folder / "best.safetensors", 2_700_000)
    needed = 11_000_000 + checkpoint.MARGIN - free
    assert f"free at least {-(-needed // 1_000_000)} MB more" in message


def test_a_loaded_checkpoint_keeps_no_hold_on_its_file(tmp_path):
    # a mapped last.safetensors, replaced by the next epoch's, would keep its disk space taken (the full-disk case)
    from cnnlab.models import create_model
    from cnnlab.training.checkpoint import load_training_state, save_training_state
    from cnnlab.training.optimizer import make_optimizer

    config = make_config("mlp", "mnist")
    model = create_model("mlp")
    optimizer = make_optimizer(config.recipe, model)
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    path = tmp_path / "last.safetensors"
    save_training_state(path, model, optimizer, 1, {k: v.clone() for k, v in model.state_dict().items()})
    _, best, _ = load_training_state(path, model, make_optimizer(config.recipe, model))
    maps = open("/proc/self/maps").read()
    assert str(path) not in maps and best is not None


def test_compare_says_when_losses_are_of_different_kinds(mnist_root, tmp_path, capsys, monkeypatch):
    import cnnlab
    from cnnlab import plots

    for name, smoothing in (("plain", 0.0), ("smoothed", 0.2)):
        cnnlab.train(
            "mlp",
            "mnist",
            data_root=str(mnist_root),
            epochs=1,
            batch_size=64,
            precision="fp32",
            label_smoothing=smoothing,
            folder=tmp_path / name,
            progress=False,
            log=lambda line: None,
        )
    drawn = []
    real = plots.compare_curves
    monkeypatch.setattr(plots, "compare_curves", lambda names, histories: drawn.append(names) or real(names, histories))
    assert main(["compare", str(tmp_path / "plain"), str(tmp_path / "smoothed"), "--out", str(tmp_path / "c.png")]) == 0
    assert "losses are of different kinds" in capsys.readouterr().out
    assert drawn == [["plain (cross-entropy)", "smoothed (cross-entropy, label smoothing 0.2)"]]
    assert main(["compare", str(tmp_path / "plain"), str(tmp_path / "plain"), "--out", str(tmp_path / "d.png")]) == 0
    assert "different kinds" not in capsys.readouterr().out


def test_layers_and_explanation_names_say_what_they_are(tmp_path):
    from cnnlab.cli.inspection import default_reason, images_name
    from cnnlab.models import create_model
    from cnnlab.models.layers import default_layer

    capsnet = create_model("capsnet")
    assert default_layer(capsnet) == "conv1" and "not its last conv" in default_reason(capsnet)
    assert default_reason(create_model("lesson-cnn", in_channels=3, image_size=32)) == "the last conv layer"

    assert images_name(["a/cat.png", "dog.jpg", "frog.png"]) == "cat+dog+frog"
    assert images_name(["cat.png"] * 5) == "cat-and-4-more"
    assert images_name([]) == ""


def test_summary_and_models_count_with_the_same_classes_and_say_so(capsys):
    assert main(["summary", "resnet18"]) == 0
    assert "1,000 classes: 11,689,512 parameters" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert any("11,689,512" in line and "1000" in line for line in capsys.readouterr().out.splitlines())
    assert main(["summary", "resnet18", "--classes", "10"]) == 0
    assert "10 classes: 11,181,642 parameters" in capsys.readouterr().out


@pytest.mark.parametrize("given", [["--data-root", "/my data"], ["--data-root=/my data"], []])
def test_main_sh_looks_for_mnist_where_data_root_says(tmp_path, given):
    import shutil
    import subprocess
    from pathlib import Path

    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "scripts" / "main.sh", repo / "scripts" / "main.sh")
    (repo / "scripts" / "setup.sh").write_text("#!/bin/sh\n")
    (repo / ".venv" / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    # a stand-in cnnlab that records each call, one argument a line
    (repo / ".venv" / "bin" / "cnnlab").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" "--" >> "{calls}"\n')
    for script in ("scripts/main.sh", "scripts/setup.sh", ".venv/bin/cnnlab"):
        (repo / script).chmod(0o755)
    subprocess.run(["bash", str(repo / "scripts" / "main.sh"), *given], check=True, timeout=60)
    datasets_call, train_call = calls.read_text().split("--\n")[:2]
    assert datasets_call.splitlines()[:3] == ["datasets", "mnist", "--download"]
    assert ("/my data" in datasets_call.splitlines()) == bool(given)
    assert train_call.splitlines()[:4] == ["train", "mlp", "--dataset", "mnist"]


def test_cnnlab_makes_waiting_openmp_threads_sleep_not_spin():
    # spinning threads beside busy processes made an MLP epoch 7-10x slower (bench/epoch_under_load.py)
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    shown = subprocess.run(
        [sys.executable, "-c", "import cnnlab, os; print(os.environ['OMP_WAIT_POLICY'])"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.stdout.strip() == "PASSIVE", shown.stderr
    kept = subprocess.run(
        [sys.executable, "-c", "import cnnlab, os; print(os.environ['OMP_WAIT_POLICY'])"],
        capture_output=True,
        text=True,
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        timeout=120,
    )
    assert kept.stdout.strip() == "ACTIVE"  # a user's own choice stands
