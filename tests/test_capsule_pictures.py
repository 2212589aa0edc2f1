"""CapsNet's pictures: reconstructions.png after training, and `explain --method capsule-dims`."""

import numpy as np
from PIL import Image

from cnnlab.cli import main
from cnnlab.models import Recipe
from cnnlab.training.config import RunConfig
from cnnlab.training.loop import train

SMALL = {"conv_channels": 16, "primary_maps": 4}  # the paper's layout, narrower: trains in seconds


def test_capsnet_run_draws_reconstructions_and_capsule_dimensions(mnist_root, tmp_path, capsys):
    recipe = Recipe(epochs=1, batch_size=32, lr=1e-3, optimizer="adam", schedule="constant")
    train(
        RunConfig("capsnet", "mnist", recipe, data_root=str(mnist_root), precision="fp32", model_args=SMALL),
        tmp_path / "caps",
        progress=False,
        log=lambda s: None,
    )
    assert (tmp_path / "caps" / "reconstructions.png").stat().st_size > 5_000

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    code = main(
        [
            "explain",
            str(tmp_path / "caps"),
            str(tmp_path / "blank.png"),
            "--method",
            "capsule-dims",
            "--out",
            str(tmp_path / "dims.png"),
            "--save-array",
            str(tmp_path / "dims.npy"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "16 dimensions x 11 nudges" in out
    grid = np.load(tmp_path / "dims.npy")
    assert grid.shape == (16, 11, 1, 28, 28) and grid.dtype == np.uint8
    assert not np.array_equal(grid[0, 0], grid[0, -1])  # nudging a dimension changes the picture

    # Grad-CAM at CapsNet's default layer shows where the evidence is (the capsule layer's map was all zero)
    from cnnlab.data import load_dataset
    from cnnlab.inspect import attribute
    from cnnlab.predict import Predictor

    digits = load_dataset("mnist", data_root=mnist_root).test.images[:4]
    maps = attribute(Predictor.from_run(tmp_path / "caps"), digits, "gradcam")
    assert maps.shape == (4, 28, 28) and maps.reshape(4, -1).max(1).min() > 0


def test_capsule_dims_on_a_model_without_capsules_is_a_clear_error(mnist_root, tmp_path, capsys):
    main(
        [
            "train",
            "mlp",
            "--data-root",
            str(mnist_root),
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    capsys.readouterr()
    code = main(["explain", str(tmp_path / "mlp-mnist"), str(tmp_path / "blank.png"), "--method", "capsule-dims"])
    assert code == 2 and "need a capsule network" in capsys.readouterr().err
