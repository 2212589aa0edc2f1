"""Runnable as written: pictures drawn by code (`sample:NAME`), the run's own test images (`test:N`) wherever
`predict` and `explain` take an image, and the commands printed after a training."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.filters import SAMPLES, sample_image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    from conftest import make_mnist

    root = make_mnist(tmp_path_factory.mktemp("data"), n_train=300, n_test=50)
    out = tmp_path_factory.mktemp("runs")
    return cnnlab.train(
        "mnist-cnn",
        "mnist",
        data_root=str(root),
        out=out,
        epochs=1,
        batch_size=32,
        precision="fp32",
        progress=False,
        log=lambda line: None,
    )


def test_digit_samples_look_like_mnist_digits():
    for value in range(10):
        image = sample_image(f"digit{value}")
        assert image.shape == (28, 28, 3) and image.dtype == np.uint8
        grey = image[..., 0].astype(float)
        assert grey[:2].max() == 0 and grey[:, :2].max() == 0  # a black border, as MNIST's 20-in-28 box
        rows, cols = np.nonzero(grey)
        assert abs(np.average(rows, weights=grey[rows, cols]) - 13.5) < 1.5  # centred by its mass
        assert 0.08 < (grey > 128).mean() < 0.45  # a stroke, not a blob or a speck
    assert len({sample_image(f"digit{v}").tobytes() for v in range(10)}) == 10
    assert sample_image("car").shape[2] == 3 and "car" in SAMPLES


def test_predict_takes_test_images_and_samples(mnist_run, capsys):
    predictor = mnist_run.predictor
    data = predictor.split("test")
    pixels, notes = predictor.prepare(["test:7", "sample:digit3"])
    assert np.array_equal(pixels[0].numpy(), data.pixels(slice(7, 8))[0].numpy())  # the very test image
    assert np.array_equal(pixels[1].numpy()[0], sample_image("digit3")[..., 0]) and notes[1] == ["converted RGB to L"]
    assert main(["predict", str(mnist_run.folder), "test:7", "sample:digit3", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test:7\n") and "sample:digit3  [converted RGB to L]" in out
    assert out.count("probability") == 4
    assert len(mnist_run.predict(["test:0", "sample:digit7"])) == 2


@pytest.mark.parametrize(
    "bad, says",
    [
        ("test:50", "has 50 images: write test:N with N from 0 to 49"),
        ("test:x", "with N from 0 to 49"),
        ("sample:nope", "unknown sample 'nope'"),
    ],
)
def test_a_bad_test_or_sample_name_is_one_line(mnist_run, capsys, bad, says):
    before = sorted(p.name for p in mnist_run.folder.iterdir())
    assert main(["predict", str(mnist_run.folder), bad]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in mnist_run.folder.iterdir()) == before


def test_explain_takes_test_images_and_samples(mnist_run, capsys):
    folder = mnist_run.folder
    assert main(["explain", str(folder), "test:2", "sample:digit5", "--method", "gradcam"]) == 0
    out = capsys.readouterr().out
    written = folder / "explanations" / "test-2+sample-digit5-gradcam.png"  # named for both images
    assert f"wrote {written}" in out and written.stat().st_size > 1000
    result = mnist_run.explain(["test:2"], "saliency")
    assert result.array.shape == (1, 28, 28) and result.array.any()


def test_training_ends_with_next_commands_that_run(tmp_path, capsys):
    from conftest import make_mnist

    root = make_mnist(tmp_path / "my data", n_train=200, n_test=20)  # a space: the commands must quote it
    out = tmp_path / "my runs"
    assert (
        main(
            [
                "train",
                "mlp",
                "--dataset",
                "mnist",
                "--data-root",
                str(root),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    commands = [line.split("#")[0].strip() for line in printed.split("next, try:\n")[1].splitlines()]
    folder = shlex.quote(str(out / "mlp-mnist"))
    assert commands[0] == f"cnnlab evaluate {folder}" and commands[-1] == f"cnnlab serve {shlex.quote(str(out))}"
    assert any("--method saliency" in c for c in commands)  # an MLP has no conv layer for Grad-CAM
    for command in commands[:-1]:  # serve would not return
        argv = shlex.split(command)
        assert argv[0] == "cnnlab" and main(argv[1:]) == 0, command
