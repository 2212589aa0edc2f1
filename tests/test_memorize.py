"""Corrupted data (Zhang et al. 2017): each corruption does what it says, seeded, recorded; a network fits random
labels; `cnnlab memorize` draws its figure; the explorer marks corrupted runs."""

import json

import pytest
import torch
from conftest import make_mnist

import cnnlab
from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.data.corrupt import corrupt, parse_corrupt
from cnnlab.errors import CnnlabError
from cnnlab.training import memorize
from cnnlab.training.memorize import MEMORIZE_RECIPE, Curve, fit, steps_to, subset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def mnist(tmp_path):
    make_mnist(tmp_path / "data", n_train=300, n_test=100)
    return load_dataset("mnist", data_root=tmp_path / "data")


def test_labels_p_replaces_exactly_that_fraction_with_random_classes_seeded(mnist):
    half = corrupt(mnist, "labels=0.5", seed=3)
    changed = half.train.labels != mnist.train.labels
    # 150 labels drawn again; about a tenth of them land on the true class by chance
    assert 110 <= int(changed.sum()) <= 150
    assert torch.equal(half.train.labels, corrupt(mnist, "labels=0.5", seed=3).train.labels)
    assert not torch.equal(half.train.labels, corrupt(mnist, "labels=0.5", seed=4).train.labels)
    assert torch.equal(half.test.labels, mnist.test.labels) and torch.equal(half.train.images, mnist.train.images)
    every = corrupt(mnist, "labels=1", seed=0).train.labels
    assert 0.02 < float((every == mnist.train.labels).float().mean()) < 0.2  # chance: a tenth
    assert torch.equal(corrupt(mnist, "labels=0", seed=0).train.labels, mnist.train.labels)


def with_markers(images: torch.Tensor) -> torch.Tensor:
    """Two marker images first: pixel i holds i % 256 in the first and i // 256 in the second, so after any
    permutation of positions the two together say where each pixel came from."""
    where = torch.arange(28 * 28).view(1, 1, 28, 28)
    return torch.cat([(where % 256).to(torch.uint8), (where // 256).to(torch.uint8), images])


def test_shuffled_pixels_is_one_permutation_for_train_and_test(mnist):
    train = type(mnist.train)(with_markers(mnist.train.images), torch.cat([mnist.train.labels[:2], mnist.train.labels]))
    test = type(mnist.test)(with_markers(mnist.test.images), torch.cat([mnist.test.labels[:2], mnist.test.labels]))
    data = type(mnist)(mnist.name, mnist.classes, train, test, mnist.source)
    shuffled = corrupt(data, "shuffled-pixels", seed=0)
    for images, original in ((shuffled.train.images, train.images), (shuffled.test.images, test.images)):
        came_from = images[0].flatten().long() + 256 * images[1].flatten().long()
        assert torch.equal(came_from.sort().values, torch.arange(28 * 28))  # a permutation, not the identity
        assert not torch.equal(came_from, torch.arange(28 * 28))
        assert torch.equal(images.flatten(1), original.flatten(1)[:, came_from])
    assert torch.equal(shuffled.train.images[0], shuffled.test.images[0])  # the same one for train and test


def test_random_pixels_permutes_each_image_differently(mnist):
    random = corrupt(mnist, "random-pixels", seed=0)
    assert torch.equal(random.train.images.flatten(1).sort(1).values, mnist.train.images.flatten(1).sort(1).values)
    # the same marker-free check: two copies of one image get different orders
    twin = type(mnist.train)(mnist.train.images[:1].repeat(2, 1, 1, 1), mnist.train.labels[:2])
    data = type(mnist)(mnist.name, mnist.classes, twin, twin, mnist.source)
    a, b = corrupt(data, "random-pixels", seed=0).train.images
    assert not torch.equal(a, b) and torch.equal(a.flatten().sort().values, b.flatten().sort().values)
    assert torch.equal(random.train.labels, mnist.train.labels)


def test_gaussian_matches_the_data_sets_mean_and_std(mnist):
    noise = corrupt(mnist, "gaussian", seed=0).train.images.float() / 255
    real = mnist.train.images.float() / 255
    assert abs(float(noise.mean() - real.mean())) < 0.03
    assert abs(float(noise.std() - real.std())) < 0.05  # clipping to 0..1 trims the tails a little
    assert noise.shape == real.shape


@pytest.mark.parametrize(
    "spec, message",
    [
        ("labels=2", "from 0 to 1"),
        ("labels=x", "from 0 to 1"),
        ("noise", "unknown corruption"),
        ("gaussian=3", "takes no value"),
    ],
)
def test_bad_corruptions_are_refused(spec, message):
    with pytest.raises(CnnlabError, match=message):
        parse_corrupt(spec)


def test_train_corrupt_is_recorded_and_bad_spec_is_one_line(tmp_path, capsys):
    make_mnist(tmp_path / "data", n_train=200, n_test=50)
    run = cnnlab.train(
        "mlp",
        "mnist",
        data_root=tmp_path / "data",
        folder=tmp_path / "run",
        epochs=1,
        batch_size=32,
        corrupt="labels=1",
        progress=False,
        log=lambda line: None,
    )
    assert json.loads((run.folder / "run.json").read_text())["config"]["corrupt"] == "labels=1"
    from fastapi.testclient import TestClient

    from cnnlab.serve import create_app

    listed = (
        TestClient(create_app(tmp_path), base_url="http://127.0.0.1").get("/api/monitor/runs").json()
    )  # the Training tab marks it
    assert [row["corrupt"] for row in listed if row["name"] == "run"] == ["labels=1"]
    assert (
        main(
            [
                "train",
                "mlp",
                "--data-root",
                str(tmp_path / "data"),
                "--corrupt",
                "labels=7",
                "--out",
                str(tmp_path / "runs"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--corrupt 'labels=7'" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_network_fits_random_labels(mnist):
    data = subset(mnist, 200, seed=0)
    curve = fit(
        "mlp",
        data,
        "labels=1",
        MEMORIZE_RECIPE.replace(epochs=80, batch_size=50),
        seed=0,
        progress=False,
        log=lambda line: None,
    )
    assert curve.train_accuracy >= 0.99
    assert curve.accuracy[0] < 0.5 and curve.steps[-1] == len(curve.steps) * 4
    assert curve.loss[-1] < curve.loss[0] / 3  # SGD stops at the mark with more loss left than Adam


def test_memorize_command_draws_every_curve(tmp_path, capsys):
    make_mnist(tmp_path / "data", n_train=300, n_test=100)
    out = tmp_path / "memo.png"
    assert (
        main(
            [
                "memorize",
                "mlp",
                "--dataset",
                "mnist",
                "--data-root",
                str(tmp_path / "data"),
                "--subset",
                "150",
                "--corrupt",
                "none,labels=1",
                "--max-epochs",
                "60",
                "--batch-size",
                "50",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    saved = json.loads(out.with_suffix(".json").read_text())
    true, random = saved["curves"]
    assert true["label"] == "true labels" and random["label"] == "random labels"
    assert true["train_accuracy"] >= 0.99 and random["train_accuracy"] >= 0.99
    assert true["test_accuracy"] > random["test_accuracy"] + 0.2  # only true labels generalize
    assert len(random["steps"]) > len(true["steps"])  # random labels take longer
    assert out.stat().st_size > 10_000
    assert main(["memorize", "mlp", "--subset", "0", "--data-root", str(tmp_path / "data")]) == 2
    assert "subset 0" in capsys.readouterr().err


def test_steps_to_fit_is_the_first_recorded_step_at_the_mark():
    steps, accuracy = [40, 80, 120, 160, 200], [0.3, 0.98, 0.99, 0.97, 0.999]
    assert steps_to(steps, accuracy) == 120  # reaching the mark exactly counts; a later dip does not move it
    assert steps_to(steps, accuracy, 0.995) == 200
    assert steps_to(steps, accuracy, 0.9995) is None
    curve = Curve("labels=1", steps, [2.3] * 5, accuracy)
    assert curve.fitted_at == 120 and curve.to_dict()["fitted_at"] == 120
    assert Curve("").to_dict()["fitted_at"] is None  # nothing trained yet


def test_memorize_options_reach_the_training(tmp_path, monkeypatch):
    make_mnist(tmp_path / "data", n_train=120, n_test=40)
    made, real = [], memorize.make_optimizer

    def spy(recipe, model):  # the optimizer fit() trains with, and the recipe it was made from
        made.append((recipe, real(recipe, model)))
        return made[-1][1]

    monkeypatch.setattr(memorize, "make_optimizer", spy)
    out = tmp_path / "memo.png"
    options = ["--optimizer", "adam", "--lr", "0.004", "--schedule", "exponential", "--decay", "0.5"]
    args = ["memorize", "mlp", "--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--subset", "60"]
    args += ["--batch-size", "30", "--no-progress", "--out", str(out)]
    assert main([*args, "--corrupt", "labels=1", "--max-epochs", "3", *options]) == 0
    ((recipe, optimizer),) = made
    assert isinstance(optimizer, torch.optim.Adam) and (recipe.epochs, recipe.batch_size) == (3, 30)
    # the schedule ran too: after 3 epochs of 2 steps the last step's rate was 0.004 * 0.5 ** (5 / 2)
    assert all(g["lr"] == pytest.approx(0.004 * 0.5**2.5) for g in optimizer.param_groups)
    assert json.loads(out.with_suffix(".json").read_text())["recipe"]["optimizer"] == "adam"
    made.clear()
    assert main([*args, "--corrupt", "none", "--max-epochs", "1", "--momentum", "0.5"]) == 0
    ((recipe, optimizer),) = made  # unset options: memorize's own recipe (SGD)
    assert recipe == MEMORIZE_RECIPE.replace(epochs=1, batch_size=30, momentum=0.5)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.5


def test_memorize_help_states_the_recipes_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["memorize", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    r = MEMORIZE_RECIPE
    for default in (r.optimizer, r.momentum, r.lr, r.epochs, r.batch_size, r.schedule, r.decay):
        assert f"default: {default}" in shown
