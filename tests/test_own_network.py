"""A learner's own nn.Module through the whole of cnnlab: the lesson's MLP and CNN, written as the lesson writes
them (tests/lesson_nets.py, not the registry), trained with cnnlab.train, reloaded in a fresh process, explained,
evaluated, resumed after SIGKILL bit for bit, opened by the CLI and the explorer only with code the caller names."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import make_cifar, make_mnist
from fastapi.testclient import TestClient
from lesson_nets import CifarNet, Net
from safetensors.torch import load_file

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.inspect.methods import EXPLANATIONS, WITHOUT_IMAGES
from cnnlab.predict import Predictor
from cnnlab.serve import create_app

pytestmark = pytest.mark.usefixtures("one_thread")
TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
ONE_PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)
QUIET = dict(progress=False, log=lambda line: None, precision="fp32", batch_size=32)


@pytest.fixture(scope="module")
def lesson_runs(tmp_path_factory):
    """The lesson MLP (an instance) on a fake MNIST and the lesson CNN (a class) on a fake CIFAR-10."""
    data = tmp_path_factory.mktemp("own-data")
    make_mnist(data, n_train=200, n_test=60)
    make_cifar(data, per_batch=20)
    runs = tmp_path_factory.mktemp("own-runs")
    torch.manual_seed(0)
    mlp = cnnlab.train(Net(), "mnist", data_root=data, folder=runs / "mlp", epochs=1, **QUIET)
    cnn = cnnlab.train(CifarNet, "cifar10", recipe="lesson-cnn", data_root=data, folder=runs / "cnn", epochs=2, **QUIET)
    return data, runs, mlp, cnn


def in_child(code: str, cwd: Path) -> str:
    """Run `code` in a fresh Python (cnnlab from this checkout, tests/ importable); returns its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def uint8_images(n: int, shape, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8))


# --- training, the run folder, reloading ---------------------------------------------------------------------------


def test_the_record_names_the_class_its_parameters_and_keeps_its_source(lesson_runs):
    _, runs, mlp, cnn = lesson_runs
    record = json.loads((runs / "cnn" / "run.json").read_text())
    own = record["model"]["own"]
    assert (own["module"], own["qualname"], own["args"]) == ("lesson_nets", "CifarNet", {})
    assert own["parameters"]["fc1.weight"] == [500, 1024]
    assert "x = x.view(-1, 64 * 4 * 4)" in own["source"]
    assert json.loads((runs / "mlp" / "run.json").read_text())["model"]["own"]["args"] is None  # an instance
    tensors = load_file(runs / "cnn" / "best.safetensors")
    assert {k: list(v.shape) for k, v in tensors.items()} == own["parameters"]
    assert mlp.test_accuracy > 0.5 and cnn.test_accuracy > 0.2  # learnable data: they learned something


def test_a_fresh_process_reloads_both_to_identical_predictions(lesson_runs, tmp_path):
    _, runs, mlp, cnn = lesson_runs
    digits, photos = uint8_images(5, (1, 28, 28)), uint8_images(5, (3, 32, 32), 1)
    np.save(tmp_path / "digits.npy", digits.numpy())
    np.save(tmp_path / "photos.npy", photos.numpy())
    out = in_child(
        f"""
        import json, numpy as np, torch, cnnlab
        from lesson_nets import Net, CifarNet
        torch.set_num_threads(1)
        mlp = cnnlab.load({str(runs / "mlp")!r}, model=Net)
        cnn = cnnlab.load({str(runs / "cnn")!r}, model=CifarNet())
        print(json.dumps([mlp.probabilities(np.load('digits.npy')).tolist(),
                          cnn.probabilities(np.load('photos.npy')).tolist()]))
    """,
        tmp_path,
    )
    there = json.loads(out)
    here = cnnlab.load(runs / "mlp", model=Net), cnnlab.load(runs / "cnn", model=CifarNet)
    assert np.array_equal(np.array(there[0], np.float32), here[0].probabilities(digits))
    assert np.array_equal(np.array(there[1], np.float32), here[1].probabilities(photos))
    # and the same answers as the trained network gave (which ran channels_last: the last bits may differ)
    assert np.allclose(there[1], cnn.probabilities(photos), atol=1e-6)
    assert np.array_equal(np.array(there[0], np.float32), mlp.probabilities(digits))


def test_a_class_that_does_not_fit_the_run_is_one_line(lesson_runs):
    _, runs, _, _ = lesson_runs
    with pytest.raises(CnnlabError, match=r"^Net does not fit .*CifarNet was trained\): it lacks conv1.weight"):
        cnnlab.load(runs / "cnn", model=Net)

    class Wider(CifarNet):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(64 * 4 * 4, 600)

    with pytest.raises(CnnlabError, match=r"fc1.weight is \[600, 1024\] in it, \[500, 1024\] in the run"):
        cnnlab.load(runs / "cnn", model=Wider)


def test_shapes_are_checked_before_training_in_one_line(lesson_runs):
    data = lesson_runs[0]

    class GreyCifarNet(CifarNet):  # the lesson's view(-1, 64 * 4 * 4) given 28x28 images
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)

    with pytest.raises(CnnlabError) as caught:
        cnnlab.train(GreyCifarNet, "mnist", data_root=data, folder="x", epochs=1, **QUIET)
    message = str(caught.value)
    assert "\n" not in message and not Path("x").exists()
    assert "28x28 images" in message and "after layer 'pool' (MaxPool2d) gave [64, 3, 3] = 576" in message
    assert "reshapes to 1024 values per image" in message
    with pytest.raises(
        CnnlabError,
        match=r"layer 'conv1' \(Conv2d\) got input \[1, 28, 28\] per image but expects "
        r"3 channels",
    ):
        cnnlab.train(CifarNet, "mnist", data_root=data, folder="x", epochs=1, **QUIET)

    class FiveClasses(Net):
        def __init__(self):
            super().__init__()
            self.fc3 = torch.nn.Linear(512, 5)

    with pytest.raises(CnnlabError, match=r"^FiveClasses outputs 5 class scores per image but mnist has 10 classes"):
        cnnlab.train(FiveClasses(), "mnist", data_root=data, folder="x", epochs=1, **QUIET)


def test_recipes_borrowed_named_or_by_fields():
    from cnnlab.models import get_spec
    from cnnlab.training.custom import own_config

    assert own_config(CifarNet, "cifar10", "lesson-cnn").recipe == get_spec("lesson-cnn").recipe(None, "cifar10")
    assert own_config(CifarNet, "cifar10", "lesson-cnn:best").recipe == get_spec("lesson-cnn").recipe("best")
    assert own_config(Net(), "mnist", epochs=3, lr=0.5).recipe.lr == 0.5
    with pytest.raises(CnnlabError, match="lesson-cnn has no recipe 'fastest'"):
        own_config(CifarNet, "cifar10", "lesson-cnn:fastest")


def test_the_custom_path_gets_channels_last_and_the_fast_layers(lesson_runs):
    from cnnlab.models.dropout import Dropout
    from cnnlab.models.pooling import MaxPool2d
    from cnnlab.training.assemble import Training
    from cnnlab.training.custom import own_config

    data = lesson_runs[0]
    config = own_config(CifarNet, "cifar10", "lesson-cnn", data_root=data, batch_size=32)
    training = Training(config, "unused", model=CifarNet)
    assert training.channels_last and training.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert type(training.model.dropout) is Dropout and type(training.model.pool) is MaxPool2d
    x = next(iter(training.batches(training.train_set)))[0]
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert training.model(x).shape == (32, 10)  # the lesson's view() works on channels_last batches


# --- everything downstream -----------------------------------------------------------------------------------------


def test_every_explanation_method_on_the_lesson_cnn(lesson_runs):
    _, _, _, cnn = lesson_runs
    photo = uint8_images(1, (3, 32, 32), 2)
    applicable = [m for m in EXPLANATIONS if m != "capsule-dims"]  # CapsNet's own: not a logits network
    for method in applicable:
        images = () if method in WITHOUT_IMAGES else photo
        options = dict(steps=4) if method in ("maximize", "deepdream", "integrated-gradients") else {}
        if method == "maximize":
            options["target"] = "cat"
        if method == "top-patches":
            options = dict(limit=40)
        explanation = cnn.explain(images, method, **options)
        assert explanation.lines and explanation.figure is not None, method
    from cnnlab.models.layers import default_layer, layer_table

    assert default_layer(cnn.predictor.model) == "conv3"
    assert [layer.name for layer in layer_table(cnn.predictor.model, (3, 32, 32))][:4] == [
        "conv1",
        "pool",
        "conv2",
        "conv3",
    ]


def test_evaluate_curves_and_figures_that_show_themselves(lesson_runs):
    _, _, mlp, cnn = lesson_runs
    plain, moved = cnn.evaluate(), cnn.evaluate(perturb="rotate=30,translate=0.1")
    assert plain.accuracy == pytest.approx(cnn.test_accuracy) and moved.total == plain.total
    for figure in (mlp.curves(), mlp.explain(uint8_images(1, (1, 28, 28)), "saliency").figure):
        assert figure._repr_png_().startswith(b"\x89PNG")


def test_cli_runs_of_own_networks_with_trust(lesson_runs, tmp_path, capsys):
    data, runs, _, _ = lesson_runs
    nets = shutil.copy(TESTS / "lesson_nets.py", tmp_path / "nets.py")
    folder = runs / "cnn"
    assert main(["summary", str(folder), "--trust", nets]) == 0
    assert "541,094 parameters" in capsys.readouterr().out
    assert main(["interpret", str(folder), "--trust", nets, "--out", str(tmp_path / "top.png")]) == 0
    assert (
        main(["explain", str(folder), "--method", "top-patches", "--trust", nets, "--out", str(tmp_path / "p.png")])
        == 0
    )
    registry = cnnlab.train("mlp", "mnist", data_root=data, folder=tmp_path / "registry-mlp", epochs=1, **QUIET)
    assert (
        main(["compare", str(folder), str(runs / "mlp"), str(registry.folder), "--out", str(tmp_path / "c.png")]) == 0
    )
    table = capsys.readouterr().out
    assert "CifarNet" in table and "Net " in table and "mlp " in table
    assert (tmp_path / "top.png").is_file() and (tmp_path / "p.png").is_file()


def test_cli_trains_a_class_from_a_file_and_serve_opens_it_with_trust(lesson_runs, tmp_path, capsys):
    data = lesson_runs[0]
    nets = shutil.copy(TESTS / "lesson_nets.py", tmp_path / "nets.py")
    out = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                f"{nets}:Net",
                "--dataset",
                "mnist",
                "--data-root",
                str(data),
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--recipe",
                "mlp",
                "--precision",
                "fp32",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "Net on mnist: test accuracy" in capsys.readouterr().out
    from cnnlab.cli.user_code import trusted_classes

    image = ONE_PIXEL
    closed = TestClient(create_app(out), base_url="http://127.0.0.1").get("/api/explore/runs").json()[0]
    assert "--trust FILE.py" in closed["problem"] and closed["code"] is None
    trusted = TestClient(
        create_app(out, models=trusted_classes([nets]), models_from=str(nets)), base_url="http://127.0.0.1"
    )
    listed = trusted.get("/api/explore/runs").json()[0]
    assert listed["problem"] is None and listed["code"] == f"your own network Net, from {nets}"
    look = trusted.post("/api/explore/look", json={"run": "Net-mnist", "image": image})
    assert look.status_code == 200 and len(look.json()["scores"]) == 10


# --- resume after SIGKILL ------------------------------------------------------------------------------------------

TRAIN_AND_DIE = """
    import os, signal, torch, cnnlab
    from lesson_nets import CifarNet
    torch.set_num_threads(1)
    def log(line):
        if {die} and line.startswith("epoch   2/3"):       # epoch 2 is committed: die as a power cut would
            os.kill(os.getpid(), signal.SIGKILL)
    cnnlab.train(CifarNet, "cifar10", recipe="lesson-cnn", data_root={data!r}, folder={folder!r}, epochs=3,
                 batch_size=32, precision="fp32", dropout=0.25, progress=False, log=log)
"""


def test_resume_after_sigkill_ends_with_bit_identical_weights(lesson_runs, tmp_path):
    data = str(lesson_runs[0])
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    in_child(TRAIN_AND_DIE.format(die=False, data=data, folder=whole), tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    died = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TRAIN_AND_DIE.format(die=True, data=data, folder=killed))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert died.returncode == -9
    with pytest.raises(CnnlabError, match="pass the class"):
        cnnlab.resume(killed)
    in_child(
        f"""
        import torch, cnnlab
        from lesson_nets import CifarNet
        torch.set_num_threads(1)
        run = cnnlab.resume({killed!r}, model=CifarNet, progress=False, log=lambda line: None)
        assert run.record.status == "finished" and run.record.epochs_done == 3
    """,
        tmp_path,
    )
    for name in ("best.safetensors", "last.safetensors"):
        a, b = load_file(Path(whole) / name), load_file(Path(killed) / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


# --- the explorer in the notebook's process ------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_explore_serves_the_live_class_and_stops_cleanly(lesson_runs):
    _, runs, mlp, _ = lesson_runs
    first = mlp.explore()
    try:
        listed = httpx.get(f"http://127.0.0.1:{first.port}/api/explore/runs").json()
        mine = next(r for r in listed if r["name"] == "mlp")
        assert mine["problem"] is None and mine["code"] == "your own network Net, from this notebook's code"
        assert "<iframe" in first._repr_html_() and 'target="_blank"' in first._repr_html_()
        second = cnnlab.explore(runs, model=[Net, CifarNet])  # the cell run again: the first one goes
        assert not first.running and port_is_free(first.port)
        assert all(r["problem"] is None for r in httpx.get(f"http://127.0.0.1:{second.port}/api/explore/runs").json())
    finally:
        first.stop()
    second.stop()
    assert not second.running and port_is_free(second.port)


# --- security: nothing a run folder names is imported ----------------------------------------------------------------


def test_a_record_naming_a_module_is_never_imported(lesson_runs, tmp_path, capsys, monkeypatch):
    """The record names a module that, imported, creates a file. load, evaluate, predict and serve open the run
    without importing it (the file never appears) and say what to pass instead."""
    _, runs, _, _ = lesson_runs
    trap = tmp_path / "imported"
    (tmp_path / "evil_net.py").write_text(
        f"open({str(trap)!r}, 'w').close()\nimport torch.nn as nn\nclass CifarNet(nn.Module):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, were anything to try
    folder = tmp_path / "runs" / "evil"
    shutil.copytree(runs / "cnn", folder)
    record = json.loads((folder / "run.json").read_text())
    record["model"]["own"]["module"] = "evil_net"
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "last.safetensors").unlink()  # its record copy is the original's: use run.json
    png = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(png)
    for opens in (lambda: cnnlab.load(folder), lambda: Predictor.from_run(folder), lambda: cnnlab.resume(folder)):
        with pytest.raises(
            CnnlabError,
            match=r"evil_net.CifarNet; cnnlab never imports code a run folder names: "
            r"pass the class, e\.g\. cnnlab\.load\(.*model=CifarNet\)",
        ):
            opens()
    for command in (["evaluate", str(folder)], ["predict", str(folder), str(png)]):
        assert main(command) != 0
        assert "--trust FILE.py" in capsys.readouterr().err
    client = TestClient(create_app(folder.parent), base_url="http://127.0.0.1")
    assert "--trust FILE.py" in client.get("/api/explore/runs").json()[0]["problem"]
    image = ONE_PIXEL
    refused = client.post("/api/explore/look", json={"run": "evil", "image": image})
    assert refused.status_code == 400 and "pass the class" in refused.json()["error"]
    assert not trap.exists() and "evil_net" not in sys.modules


# --- torchrun ---------------------------------------------------------------------------------------------------


def test_cli_trains_ones_own_class_on_two_processes(lesson_runs, tmp_path):
    """`--nproc 2`: torchrun starts two processes, each imports the file the user named, DDP trains the class."""
    data = lesson_runs[0]
    nets = shutil.copy(TESTS / "lesson_nets.py", tmp_path / "nets.py")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnlab",
            "train",
            f"{nets}:CifarNet",
            "--dataset",
            "cifar10",
            "--recipe",
            "lesson-cnn",
            "--data-root",
            str(data),
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--precision",
            "fp32",
            "--nproc",
            "2",
            "--out",
            str(tmp_path / "runs"),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "runs" / "CifarNet-cifar10" / "run.json").read_text())
    assert record["processes"] == 2 and record["model"]["own"]["qualname"] == "CifarNet"
    assert record["status"] == "finished"
