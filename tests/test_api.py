"""The notebook path (`cnnlab.train`, `cnnlab.load`, a run's predict / explain / curves), the typed run record, and
bad values refused the same way from Python and from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.training.record import RunRecord


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    from conftest import make_mnist

    root = make_mnist(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("runs")
    run = cnnlab.train(
        "mlp",
        "mnist",
        data_root=str(root),
        out=out,
        epochs=2,
        batch_size=32,
        precision="fp32",
        progress=False,
        log=lambda line: None,
    )
    return run, root


def digit_file(path, value=230):
    image = np.full((28, 28), 20, np.uint8)
    image[0:7, 0:7] = value  # class 0 of the conftest data: a bright square at the top left
    Image.fromarray(image).save(path)
    return path


def test_train_and_load_give_a_run_that_predicts_and_explains(mlp_run, tmp_path):
    run, _ = mlp_run
    assert run.folder.name == "mlp-mnist" and run.test_accuracy > 0.5
    again = cnnlab.load(run.folder)
    assert again.record.best.epoch == run.record.best.epoch and "test accuracy" in repr(again)
    image = digit_file(tmp_path / "digit.png")
    (top,) = again.predict([image], top_k=3)
    assert len(top) == 3 and top[0][0] == "0" and top[0][1] >= top[1][1] >= top[2][1]
    assert np.allclose(again.probabilities([image]).sum(1), 1, atol=1e-5)
    pixels = np.asarray(Image.open(image))[None]  # [1, 28, 28] uint8: a list of arrays works too
    assert again.predict([pixels, pixels], top_k=1) == [top[:1], top[:1]]
    explanation = again.explain(image, "saliency")
    assert explanation.array.shape == (1, 28, 28) and explanation.figure.axes
    assert "predicted 0" in explanation.lines[0]
    assert again.curves().axes and len(again.record.history) == 2


def test_the_command_line_prints_what_the_api_computes(mlp_run, tmp_path, capsys):
    run, _ = mlp_run
    image = digit_file(tmp_path / "digit.png", value=200)
    assert main(["predict", str(run.folder), str(image), "--top-k", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()[1:]
    for line, (name, probability) in zip(printed, run.predict([image], top_k=2)[0]):
        assert line.split()[:2] == [name, f"{probability:.2%}"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("lr", -1.0, "learning rate -1.0: must be more than 0"),
        ("lr", float("nan"), "learning rate nan"),
        ("epochs", 0, "epochs 0: must be a whole number, from 1 to 100,000"),
        ("batch_size", 0, "batch size 0"),
        ("valid_fraction", 1.5, "validation fraction 1.5: must be between 0 and 1"),
        ("label_smoothing", 2.0, "label smoothing 2.0: must be in [0, 1)"),
        ("augment", "spin", "unknown augmentation 'spin'"),
        ("seed", 2**63, "seed 9223372036854775808"),
        ("device", "foo", "device 'foo'"),
        ("image_size", 0, "image size 0"),
    ],
)
def test_bad_values_are_refused_alike_in_python_and_on_the_command_line(option, value, message, capsys):
    with pytest.raises(CnnlabError) as refused:
        cnnlab.train("mlp", "mnist", **{option: value})
    assert message in str(refused.value)
    flag = "--" + option.replace("_", "-")
    assert main(["train", "mlp", flag, str(value)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_options_and_data_sets_are_refused():
    with pytest.raises(CnnlabError, match="unknown training option"):
        cnnlab.train("mlp", "mnist", learning_rate=0.1)
    with pytest.raises(CnnlabError, match="unknown data set 'imagenet'"):
        cnnlab.train("mlp", "imagenet")


def test_the_run_record_round_trips_and_reads_this_versions_run_json(mlp_run):
    run, _ = mlp_run
    text = (run.folder / "run.json").read_text()
    assert json.loads(json.dumps(RunRecord.load(run.folder).to_dict(), indent=2)) == json.loads(text)
    old = json.loads(text)
    old["model"]["outputs"] = "probabilities"  # what an older run of this version wrote for CapsNet
    old["best"] = {}  # a run interrupted before its first epoch ended
    old["data"]["mean"] = [0]  # ints where floats are expected
    (run.folder.parent / "old").mkdir()
    (run.folder.parent / "old" / "run.json").write_text(json.dumps(old))
    record = RunRecord.load(run.folder.parent / "old")
    assert record.best is None and record.data.mean == [0.0] and record.preprocess.shape == (1, 28, 28)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["data"].update(mean="abc"), "data.mean should be a list"),
        (lambda d: d["history"][0].update(valid_loss="x"), "history[0].valid_loss should be float"),
        (lambda d: d["model"].pop("name"), "model lacks name"),
        (lambda d: d["config"]["recipe"].update(lr=-1), "learning rate -1"),
        (lambda d: d.update(test=[1, 2]), "test should be an object"),
    ],
)
def test_a_damaged_run_json_is_one_line_naming_the_field(mlp_run, tmp_path, change, message):
    run, _ = mlp_run
    data = json.loads((run.folder / "run.json").read_text())
    change(data)
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(CnnlabError, match="run.json: ") as refused:
        RunRecord.load(tmp_path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8 \x00", b"[" * 100_000, b'{"config": 1', b"[]"])
def test_run_json_that_is_not_a_record_is_refused_in_one_line(tmp_path, content):
    (tmp_path / "run.json").write_bytes(content)
    with pytest.raises(CnnlabError) as refused:
        RunRecord.load(tmp_path)
    assert str(refused.value).startswith(f"{tmp_path / 'run.json'}: ") and "\n" not in str(refused.value)


def test_a_batch_larger_than_the_data_or_an_image_too_small_for_the_model_is_refused(mnist_root, tmp_path):
    with pytest.raises(CnnlabError, match="batch size 1000 is larger than the 480 training images"):
        cnnlab.train("mlp", "mnist", data_root=str(mnist_root), batch_size=1000, out=tmp_path / "runs")
    with pytest.raises(CnnlabError, match="lesson-cnn cannot take 28x28 images with 1 channel.*--image-size"):
        cnnlab.train(
            "lesson-cnn", "mnist", data_root=str(mnist_root), out=tmp_path / "runs", model_args={"image_size": 64}
        )
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made
