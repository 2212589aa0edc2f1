"""What a new user meets in the first hour: instructions that work, pictures that do not mislead, files others can
read, logs without progress-bar floods, and a word when a run learned nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.inspect.attributions import describe
from cnnlab.models import create_model
from cnnlab.plots import training_curves
from cnnlab.training import loop
from cnnlab.training.config import make_config
from cnnlab.training.loop import train
from cnnlab.training.report import no_better_than_guessing, sample_indices, train_note


def small(root, **changes):
    return make_config("mlp", "mnist", data_root=str(root), precision="fp32", batch_size=32, **changes)


def test_ctrl_c_says_what_was_saved_and_the_resume_command_works(mnist_root, tmp_path, capsys, monkeypatch):
    real_train_epoch, lines = loop.train_epoch, []

    def ctrl_c_in_epoch_3(run, batches, epoch, progress):
        if epoch == 3:
            raise KeyboardInterrupt
        return real_train_epoch(run, batches, epoch, progress)

    monkeypatch.setattr(loop, "train_epoch", ctrl_c_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(small(mnist_root, epochs=4), tmp_path / "run", progress=False, log=lines.append)
    monkeypatch.undo()
    assert "interrupted during epoch 3: epochs 1-2 are saved" in lines[-1]
    command = lines[-1].split("continue with: ")[1].split()
    assert command[:3] == ["cnnlab", "train", "--resume"]
    assert main([*command[1:], "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out


def test_ctrl_c_in_the_first_epoch_suggests_no_resume_and_leaves_no_empty_folder(mnist_root, tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(small(mnist_root, epochs=2), tmp_path / "run", progress=False, log=lines.append)
    assert "nothing was saved" in lines[-1] and "--resume" not in lines[-1]
    assert not (tmp_path / "run").exists()


def test_the_sample_grid_never_shows_an_image_twice():
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    predictions = torch.tensor([1, 1, 0, 3, 0, 0, 2, 3, 0, 1])  # wrong at 0, 2, 5: among the first
    shown, n_wrong = sample_indices(predictions, labels, count=8, mistakes=8)
    assert len(set(shown.tolist())) == len(shown) == 8 and n_wrong == 3
    assert shown[-3:].tolist() == [0, 2, 5] and (predictions[shown[:5]] == labels[shown[:5]]).all()
    shown, _ = sample_indices(predictions, labels, count=32)  # fewer images than the grid has room for
    assert sorted(shown.tolist()) == list(range(10))


def test_the_curves_say_how_train_was_measured_and_read_well():
    lesson_recipe = make_config("mlp", "mnist", "lesson").recipe
    assert train_note(create_model("mlp"), lesson_recipe) == "dropout on"
    assert train_note(create_model("mlp"), make_config("mlp", "mnist").recipe) == "dropout on; augmented images"
    cnn_recipe = make_config("mnist-cnn", "mnist").recipe
    note = train_note(create_model("mnist-cnn"), cnn_recipe)
    assert note == "batch norm on batch statistics; augmented images"  # label smoothing: valid's loss has it too
    history = [
        {"epoch": e, "train_loss": 0.5, "valid_loss": loss, "train_acc": 0.9, "valid_acc": 0.9}
        for e, loss in ((1, 0.4), (2, 2500.0))
    ]
    figure = training_curves(history, best_epoch=1, train_note=note)
    loss_axes, acc_axes = figure.axes[:2]
    assert loss_axes.get_yscale() == "log" and acc_axes.get_yscale() == "linear"
    figure.canvas.draw()
    ticks = [t for t in loss_axes.get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "batch norm" in loss_axes.get_title()


def test_colour_wording_only_for_colour_images():
    assert describe("integrated-gradients", 1) == "integrated gradients from a black image"
    assert describe("integrated-gradients", 3).endswith("(sum over colours)")


def test_a_log_gets_no_progress_bar_flood(mnist_root, tmp_path, capfd):
    train(small(mnist_root, epochs=1), tmp_path / "run", progress=True, log=print)
    captured = capfd.readouterr()
    assert "\r" not in captured.err and "\r" not in captured.out and "epoch   1/1" in captured.out


def test_files_cnnlab_writes_follow_the_umask(mnist_root, tmp_path):
    old = os.umask(0o022)
    try:
        train(small(mnist_root, epochs=1), tmp_path / "run", progress=False, log=lambda line: None)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_a_run_that_learned_nothing_says_so_and_what_to_try(mnist_root, tmp_path):
    lines = []
    train(small(mnist_root, epochs=1, lr=1e-9), tmp_path / "run", progress=False, log=lines.append)
    assert any("no better than always answering" in line and "--lr" in line for line in lines)
    labels = torch.tensor([0] * 90 + [1] * 10)
    assert no_better_than_guessing(0.91, labels, ["a", "b"]) is not None
    assert no_better_than_guessing(0.95, labels, ["a", "b"]) is None


def test_the_command_line_helps_instead_of_failing(capsys):
    assert main([]) == 0 and "COMMAND" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("cnnlab ")
    with pytest.raises(SystemExit) as done:
        main(["explain", "runs/x", "--method", "gradcm"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'gradcm'" in err


def test_summary_takes_non_square_inputs_and_says_what_trains(capsys):
    assert main(["summary", "resnet18", "--input", "3x240x320", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "input 3x240x320, 10 classes: 11,181,642 parameters (11,181,642 trainable, 0 frozen)" in out and "MiB" in out
    assert np.isfinite(float(out.split("weights ")[1].split(" MiB")[0]))


def test_lr_find_sweeps_up_stops_when_the_loss_explodes_and_suggests_a_tenth_of_the_best(mnist_root, tmp_path, capsys):
    from cnnlab.training.lr_find import lr_find

    found = lr_find(small(mnist_root), steps=60, progress=False)
    assert all(a < b for a, b in zip(found.lrs, found.lrs[1:])) and np.isfinite(found.losses).all()
    assert len(found.lrs) < 60  # lr 10 blows the loss up before the end
    assert found.suggestion == pytest.approx(found.lrs[int(np.argmin(found.losses))] / 10)
    assert (
        main(
            [
                "lr-find",
                "mlp",
                "--data-root",
                str(mnist_root),
                "--steps",
                "30",
                "--batch-size",
                "64",
                "--no-progress",
                "--out",
                str(tmp_path / "lr.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "cnnlab train mlp --dataset mnist --lr " in out and (tmp_path / "lr.png").stat().st_size > 5000
    assert not list(tmp_path.glob("*/run.json"))  # a sweep leaves no run behind


def test_interpret_lists_the_most_confident_mistakes_and_confused_pairs(mnist_root, tmp_path, capsys):
    from cnnlab.inspect.interpret import interpret
    from cnnlab.predict import Predictor

    train(small(mnist_root, epochs=1), tmp_path / "run", progress=False, log=lambda line: None)
    predictor = Predictor.from_run(tmp_path / "run")
    found = interpret(predictor, top=8)
    assert (np.diff(found.loss) <= 0).all() and len(found.index) == 8
    probabilities = predictor.probabilities(found.images)
    assert np.allclose(-np.log(probabilities[np.arange(8), found.actual].numpy()), found.loss, atol=1e-4)
    confusion = predictor.evaluate().confusion
    for actual, predicted, count in found.confused:
        assert count == confusion[found.classes.index(actual), found.classes.index(predicted)] and actual != predicted
    assert [c for *_, c in found.confused] == sorted((c for *_, c in found.confused), reverse=True)
    assert main(["interpret", str(tmp_path / "run"), "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert "most confused" in out and (tmp_path / "run" / "top-losses-test.png").stat().st_size > 5000


@pytest.mark.parametrize(
    "code, message",
    [
        (28, "no space left on the device; free some space"),
        (30, "cannot write there (Read-only file system); choose a folder"),
    ],
)
def test_a_full_or_read_only_disk_is_one_line(code, message, tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main(["filter", "sample:city", "-k", "box", "--out", str(tmp_path / "box.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnnlab: error: {tmp_path}: {message}") and err.count("\n") == 1


def test_figures_stay_readable_from_2_to_1000_classes_and_1_to_100_epochs():
    from cnnlab.plots import confusion_matrix, sample_grid

    for n in (2, 1000):
        figure = confusion_matrix(np.eye(n, dtype=int) * 5, [f"n0144{i:04d}_a_long_imagenet_name" for i in range(n)])
        width, height = figure.get_size_inches()
        labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
        assert width <= 15 and height <= 14 and not any("_a_long_imagenet_name" in t for t in labels)
        assert n > 40 or len(labels) == n
    names = ["n01440764_tench_fish_of_europe", "n02102040_english_springer"]
    grid = sample_grid(np.zeros((2, 3, 8, 8), np.uint8), [0, 1], [1, 1], names)
    assert all(len(line) <= 16 for ax in grid.axes for line in ax.get_title().splitlines())  # with ( )
    for epochs in (1, 100):
        history = [
            {"epoch": e, "train_loss": 1 / e, "valid_loss": 1 / e, "train_acc": 0.5, "valid_acc": 0.5}
            for e in range(1, epochs + 1)
        ]
        figure = training_curves(history)
        figure.canvas.draw()
        ticks = figure.axes[0].get_xticks()
        assert all(float(t).is_integer() for t in ticks) and len(ticks) <= 12
