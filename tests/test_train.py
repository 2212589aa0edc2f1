"""The training loop: it learns, keeps the best weights, survives Ctrl-C, and resumes to the same result."""

import json

import pytest
import torch

from cnnlab.models import Recipe, create_model
from cnnlab.predict import Predictor
from cnnlab.training.checkpoint import load_training_state, load_weights, save_training_state, save_weights
from cnnlab.training.config import RunConfig
from cnnlab.training.loop import train
from cnnlab.training.optimizer import make_optimizer

RECIPE = Recipe(epochs=4, batch_size=32, lr=3e-3, optimizer="adamw", schedule="onecycle")


def config(root, **changes):
    return RunConfig("mlp", "mnist", RECIPE.replace(**changes), data_root=str(root), precision="fp32")


def test_mlp_learns_and_writes_its_run_folder(mnist_root, tmp_path):
    run = train(config(mnist_root), tmp_path / "run", progress=False, log=lambda s: None)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["test"]["accuracy"] > 0.6  # chance is 0.1
    assert len(info["history"]) == 4 and info["status"] == "finished"
    assert info["best"]["valid_loss"] == min(h["valid_loss"] for h in info["history"])
    for name in ("best.safetensors", "last.safetensors", "metrics.csv", "curves.png", "confusion.png", "samples.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 5
    assert not list((tmp_path / "run").glob(".*tmp"))  # no temporary files left
    trained = Predictor.from_run(tmp_path / "run")
    assert not trained.model.training
    best_epoch_model = create_model("mlp")
    load_weights(tmp_path / "run" / "best.safetensors", best_epoch_model)
    assert torch.equal(best_epoch_model.fc3.weight, trained.model.fc3.weight)
    assert run.record.test.per_class[0][1] == int((run.data.test.labels == 0).sum())


def test_checkpoint_round_trip_with_optimizer_state(tmp_path):
    model = create_model("mlp")
    optimizer = make_optimizer(RECIPE, model)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    optimizer.step()
    save_training_state(tmp_path / "last.safetensors", model, optimizer, epoch=7)
    save_weights(tmp_path / "w.safetensors", model)
    other = create_model("mlp")
    other_opt = make_optimizer(RECIPE, other)
    assert load_training_state(tmp_path / "last.safetensors", other, other_opt) == (7, None, None)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    state_a, state_b = optimizer.state_dict()["state"], other_opt.state_dict()["state"]
    assert torch.equal(state_a[0]["exp_avg_sq"], state_b[0]["exp_avg_sq"])
    assert float(state_a[0]["step"]) == float(state_b[0]["step"]) == 1.0


def test_resume_after_interrupt_gives_the_same_weights(mnist_root, tmp_path):
    whole = train(config(mnist_root), tmp_path / "whole", progress=False, log=lambda s: None)

    def interrupt_after_two(epoch, run):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            config(mnist_root), tmp_path / "cut", progress=False, on_epoch_end=interrupt_after_two, log=lambda s: None
        )
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"
    resumed = train(config(mnist_root), tmp_path / "cut", resume=True, progress=False, log=lambda s: None)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h.valid_loss for h in whole.record.history] == [h.valid_loss for h in resumed.record.history]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    from cnnlab.errors import CnnlabError

    (tmp_path / "best.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CnnlabError, match="not a readable safetensors checkpoint"):
        load_weights(tmp_path / "best.safetensors", create_model("mlp"))


def test_recipe_schedules():
    onecycle = Recipe(epochs=10, batch_size=1, lr=1.0, schedule="onecycle", warmup=0.2)
    lrs = [onecycle.lr_at(s, 100, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.01
    assert lrs.index(max(lrs)) == 20
    exp = Recipe(epochs=3, batch_size=1, lr=1.0, schedule="exponential", decay=0.25)
    assert [exp.lr_at(s, 30, 10) for s in (0, 5, 10, 25)] == [1.0, 0.5, 0.25, 0.25**2.5]
    assert Recipe(epochs=1, batch_size=1, lr=0.3, schedule="constant").lr_at(5, 10, 10) == 0.3


def test_lesson_recipe_is_the_notebooks():
    from cnnlab.models import get_spec

    lesson = get_spec("mlp").recipes["lesson"]
    assert (lesson.optimizer, lesson.lr, lesson.batch_size, lesson.epochs, lesson.momentum) == ("sgd", 0.01, 20, 50, 0)


def test_validation_and_test_images_are_never_augmented(mnist_root, tmp_path, monkeypatch):
    """The lesson's notebook augmented its validation set too; here only training batches are transformed."""
    import cnnlab.training.loop as loop
    import cnnlab.training.metrics as metrics

    trained_on, evaluated_on, real_train_epoch, real_evaluate = [], [], loop.train_epoch, metrics.evaluate

    def spy_train_epoch(run, batches, *args):
        trained_on.append(batches)
        return real_train_epoch(run, batches, *args)

    def spy_evaluate(model, batches, *args):
        evaluated_on.append(torch.cat([x for x, _ in batches]))
        return real_evaluate(model, batches, *args)

    monkeypatch.setattr(loop, "train_epoch", spy_train_epoch)
    monkeypatch.setattr(metrics, "evaluate", spy_evaluate)  # what every evaluation goes through
    run = train(
        config(mnist_root, epochs=1, augment="flip,rotate=30,crop=4,cutout=8"),
        tmp_path / "run",
        progress=False,
        log=lambda s: None,
    )
    assert trained_on[0].augment is not None
    valid, test = evaluated_on  # epoch 1's validation, then the final test
    for seen, part in ((valid, run.valid_set), (test, run.data.test)):
        plain = (part.images.float() / 255 - run.preprocess.mean[0]) / run.preprocess.std[0]
        assert seen.shape == plain.shape and torch.allclose(seen, plain, atol=1e-5)


@pytest.mark.parametrize("epochs", [1, 6])
def test_the_last_epochs_test_accuracy_is_recorded_beside_the_best_ones(mnist_root, tmp_path, epochs):
    lines = []
    run = train(config(mnist_root, epochs=epochs, lr=0.05), tmp_path / "run", progress=False, log=lines.append)
    record = run.record
    last = record.last_epoch_test
    assert last.epoch == epochs
    load_training_state(tmp_path / "run" / "last.safetensors", run.model, run.optimizer)
    assert last.accuracy == run.evaluate(run.data.test).accuracy  # the last weights, tested
    saved = json.loads((tmp_path / "run" / "run.json").read_text())["last_epoch_test"]
    assert saved == {"epoch": epochs, "loss": last.loss, "accuracy": last.accuracy}
    said = any("the last epoch's" in line for line in lines)  # said only when the kept epoch is another
    assert said == (record.best.epoch != epochs)
    if record.best.epoch == epochs:
        assert (last.loss, last.accuracy) == (record.test.loss, record.test.accuracy)


def test_a_recipes_dropout_is_what_the_model_trains_with_and_is_checked(mnist_root, tmp_path):
    from cnnlab.errors import CnnlabError

    run = train(config(mnist_root, epochs=1, dropout=0.0), tmp_path / "run", progress=False, log=lambda s: None)
    rates = [m.p for m in run.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.0] and create_model("mlp").dropout.p == 0.2  # the model's own rate is 0.2
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["recipe"]["dropout"] == 0.0
    assert "dropout 0" in RECIPE.replace(dropout=0.0).describe() and "dropout" not in RECIPE.describe()
    with pytest.raises(CnnlabError, match="dropout 1.0: must be in"):
        RECIPE.replace(dropout=1.0)
    no_dropout = RunConfig("mnist-cnn", "mnist", RECIPE.replace(dropout=0.1), data_root=str(mnist_root))
    with pytest.raises(CnnlabError, match="MnistCNN has no dropout layer"):
        train(no_dropout, tmp_path / "cnn", progress=False, log=lambda s: None)


def test_validation_loss_is_the_training_criterion_label_smoothing_included(mnist_root, tmp_path):
    import torch.nn.functional as F

    run = train(config(mnist_root, epochs=1, label_smoothing=0.3), tmp_path / "run", progress=False, log=lambda s: None)
    x, y = next(iter(run.batches(run.valid_set, batch_size=len(run.valid_set.labels))))
    with torch.no_grad():
        scores = run.model.eval()(x)
    smoothed, plain = F.cross_entropy(scores, y, label_smoothing=0.3), F.cross_entropy(scores, y)
    assert smoothed > plain + 0.1  # the two differ, so the test tells them apart
    assert run.record.history[0].valid_loss == pytest.approx(float(smoothed), rel=1e-5)
    assert Predictor.from_run(tmp_path / "run").evaluate().loss == pytest.approx(run.record.test.loss, rel=1e-6)
    assert "label smoothing 0.3" in run.config.recipe.describe()


def test_a_batch_larger_than_the_data_shrinks_if_the_recipes_and_is_refused_if_the_callers(mnist_root, tmp_path):
    """480 training images: mlp's own batch of 512 trains them as one batch (recorded so: --resume keeps it); a
    batch the caller set is refused, even one of the model's recipes' sizes (which the loop used to let through)."""
    from cnnlab.errors import CnnlabError
    from cnnlab.training.config import make_config
    from cnnlab.training.record import RunRecord

    config = make_config("mlp", "mnist", data_root=mnist_root, epochs=2)
    assert config.recipe.batch_size == 512 and config.overridden == ["epochs"]

    def stop(epoch, training):
        raise KeyboardInterrupt

    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", progress=False, on_epoch_end=stop, log=lines.append)
    assert "the 480 training images are fewer than the recipe's batch of 512" in "\n".join(lines)
    saved = RunRecord.load(tmp_path / "run").config
    assert saved.recipe.batch_size == 480 and saved.overridden == ["epochs"]
    train(saved, tmp_path / "run", resume=True, progress=False, log=lambda line: None)
    assert RunRecord.load(tmp_path / "run").status == "finished"

    refused = "batch size 512 is larger than the 480 training images; use --batch-size 480 or less"
    with pytest.raises(CnnlabError, match=refused):
        train(make_config("mlp", "mnist", data_root=mnist_root, batch_size=512), tmp_path / "b", progress=False)
    with pytest.raises(CnnlabError, match="unknown training option"):
        make_config("mlp", "mnist", overridden=[])  # worked out by make_config, not said


def test_an_own_network_follows_the_same_batch_rule(mnist_root):
    """A borrowed recipe's batch shrinks to the data; a Recipe the caller made is theirs, batch size included."""
    from lesson_nets import Net

    from cnnlab.errors import CnnlabError
    from cnnlab.training.assemble import Training
    from cnnlab.training.custom import own_config

    borrowed = own_config(Net, "mnist", "mlp", data_root=mnist_root)
    assert Training(borrowed, "unused", model=Net).config.recipe.batch_size == 480
    made = own_config(Net, "mnist", Recipe(epochs=1, batch_size=512, lr=0.01), data_root=mnist_root)
    with pytest.raises(CnnlabError, match="batch size 512 is larger than the 480 training images"):
        Training(made, "unused", model=Net)
