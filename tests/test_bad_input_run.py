"""Bad input to training and to the run folder, as a table: each row breaks one thing (a folder of the user's own
files, a damaged record or checkpoint, other data on resume, an option of the wrong type) and asserts that cnnlab
answers in one line naming the culprit, exits 2, and changes nothing on disk."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny MNIST, another one with other images, a finished 2-epoch mlp run, a picture, and a user's folder."""
    from conftest import make_mnist

    base = tmp_path_factory.mktemp("bad-run")
    root = make_mnist(base / "data", n_train=200, n_test=50)
    make_mnist(base / "other", n_train=180, n_test=50)
    assert (
        main(
            [
                "train",
                "mlp",
                "--data-root",
                str(root),
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--no-progress",
                "--precision",
                "fp32",
                "--out",
                str(base / "runs"),
                "--name",
                "run",
            ]
        )
        == 0
    )
    (base / "runs" / "mine").mkdir()
    (base / "runs" / "mine" / "metrics.csv").write_text("my own measurements\n")
    from PIL import Image

    Image.new("L", (28, 28)).save(base / "digit.png")
    return base


@pytest.fixture
def world(made, tmp_path):
    """A fresh copy of `made` for each row, so that one row's damage never reaches another."""
    copy = tmp_path / "w"
    shutil.copytree(made, copy)
    return copy


def tree_hash(folder: Path) -> dict[str, str]:
    """Every file under `folder` (the data's cache and lock files aside) and its content's hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock" and "cache" not in p.parts
    }


def edit_record(w: Path, change) -> None:
    path = w / "runs" / "run" / "run.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def edit_tensors(w: Path, name: str, change) -> None:
    from safetensors import safe_open

    path = w / "runs" / "run" / name
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = change(load_file(path))
    save_file(tensors, str(path), metadata=metadata)


def edit_metadata(w: Path, change) -> None:
    from safetensors import safe_open

    path = w / "runs" / "run" / "last.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["cnnlab"])
    change(meta)
    save_file(load_file(path), str(path), metadata={"cnnlab": json.dumps(meta)})


def first_weight(change):
    def apply(tensors):
        key = next(k for k in tensors if k.endswith("weight"))
        tensors[key] = change(tensors[key])
        return tensors

    return apply


def set_(key, value):
    def apply(record):
        holder = record
        *parents, last = key
        for k in parents:
            holder = holder[k]
        holder[last] = value

    return apply


def train(w, *more):
    return [
        "train",
        "mlp",
        "--data-root",
        w / "data",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--no-progress",
        "--out",
        w / "runs",
        *more,
    ]


def resume(w, *more):
    return ["train", "--resume", w / "runs" / "run", "--no-progress", *more]


def predict(w):
    return ["predict", w / "runs" / "run", w / "digit.png"]


def no_optimizer(tensors):
    return {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}


# (id, damage done to the copy first, the command, what the one line must say)
CASES = [
    ("name-of-a-users-folder", None, lambda w: train(w, "--name", "mine"), "is not a cnnlab run folder"),
    ("name-dot-dot", None, lambda w: train(w, "--name", ".."), "--name '..': give a plain folder name"),
    ("name-with-a-slash", None, lambda w: train(w, "--name", "a/b"), "--name 'a/b'"),
    ("name-absolute", None, lambda w: train(w, "--name", str(w / "elsewhere")), "give a plain folder name"),
    ("name-of-a-finished-run", None, lambda w: train(w, "--name", "run"), "holds a run already"),
    (
        "valid-fraction-empties-validation",
        None,
        lambda w: train(w, "--valid-fraction", "1e-9"),
        "validation fraction (--valid-fraction) 1e-09 holds out 0 of the",
    ),
    (
        "valid-fraction-empties-training",
        None,
        lambda w: train(w, "--valid-fraction", "0.9999"),
        "holds out 200 of the 200 images",
    ),
    (
        "resume-optimizer-tensors-lost",
        lambda w: edit_tensors(w, "last.safetensors", no_optimizer),
        resume,
        "optimizer tensor(s) missing",
    ),
    ("resume-other-data", None, lambda w: resume(w, "--data-root", w / "other"), "was trained on other data"),
    ("resume-epoch-99-of-2", lambda w: edit_metadata(w, set_(("epoch",), 99)), resume, "after epoch 99 of 2"),
    ("resume-epoch-minus-3", lambda w: edit_metadata(w, set_(("epoch",), -3)), resume, "after epoch -3 of 2"),
    ("mean-nan", lambda w: edit_record(w, set_(("data", "mean"), [float("nan")])), predict, "data.mean [nan]"),
    ("std-1e-300", lambda w: edit_record(w, set_(("data", "std"), [1e-300])), predict, "data.std [1e-300]"),
    (
        "more-classes-than-outputs",
        lambda w: edit_record(w, set_(("data", "classes"), [str(i) for i in range(11)])),
        predict,
        "data.classes lists 11 classes but the model has 10 outputs",
    ),
    ("epochs-done-99-of-2", lambda w: edit_record(w, set_(("epochs_done",), 99)), predict, "epochs_done 99"),
    ("status-unknown", lambda w: edit_record(w, set_(("status",), "exploded")), predict, "status 'exploded'"),
    (
        "weights-nan",
        lambda w: edit_tensors(w, "best.safetensors", first_weight(lambda t: t * float("nan"))),
        predict,
        "holds inf or nan values",
    ),
    (
        "weights-inf",
        lambda w: edit_tensors(w, "best.safetensors", first_weight(lambda t: t + float("inf"))),
        predict,
        "holds inf or nan values",
    ),
    (
        "weights-bool",
        lambda w: edit_tensors(w, "best.safetensors", first_weight(lambda t: t > 0)),
        predict,
        "is stored as bool, the model's is float32",
    ),
    (
        "weights-int32",
        lambda w: edit_tensors(w, "best.safetensors", first_weight(lambda t: t.to(torch.int32))),
        predict,
        "is stored as int32",
    ),
    (
        "last-weights-nan",
        lambda w: edit_tensors(w, "last.safetensors", first_weight(lambda t: t * float("nan"))),
        resume,
        "last.safetensors: tensor",
    ),
]


@pytest.mark.parametrize("damage, command, said", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_run_input_is_one_line_and_changes_nothing(world, damage, command, said, capsys):
    if damage:
        damage(world)
    before = tree_hash(world)
    code = main([str(a) for a in command(world)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("cnnlab: error: "), captured.err
    assert said in lines[0] and "Traceback" not in captured.err + captured.out, lines[0]
    assert tree_hash(world) == before
    assert not (world / "runs" / "a").exists() and not (world / "elsewhere").exists()


@pytest.mark.parametrize(
    "call, said",
    [
        (lambda root: dict(lookahead="no"), "lookahead 'no': must be True or False"),
        (lambda root: dict(nesterov="no"), "nesterov 'no': must be True or False"),
        (lambda root: dict(epochs=1.5), "epochs 1.5: must be a whole number"),
        (lambda root: dict(lr="0.1"), "lr '0.1': must be a number"),
        (lambda root: dict(seed=None, augment=123), "augment 123: must be a string"),
        (lambda root: dict(model_args=[1]), "model_args [1]: must be a dict"),
        (lambda root: dict(folder=42), "folder 42: give a folder's path"),
        (lambda root: dict(out=3.5), "out 3.5: give a folder's path"),
    ],
    ids=["lookahead", "nesterov", "epochs", "lr", "augment", "model_args", "folder", "out"],
)
def test_the_api_refuses_wrong_types_before_training(made, tmp_path, call, said):
    import cnnlab

    options = {
        "data_root": str(made / "data"),
        "epochs": 1,
        "batch_size": 64,
        "out": tmp_path / "runs",
        "progress": False,
        "log": lambda line: None,
        **call(made),
    }
    with pytest.raises(
        cnnlab.errors.CnnlabError,
        match="^"
        + said.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]").replace(".", r"\."),
    ):
        cnnlab.train("mlp", "mnist", **options)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "call, said",
    [
        (lambda cnnlab: cnnlab.load(42), "run folder 42: give a folder's path"),
        (lambda cnnlab: cnnlab.load(None), "run folder None"),
        (lambda cnnlab: cnnlab.load("runs/x", weights="worst"), "weights 'worst': use best or last"),
        (lambda cnnlab: cnnlab.resume(["a"]), "run folder ['a']"),
    ],
    ids=["load-42", "load-none", "load-weights", "resume-list"],
)
def test_the_api_refuses_a_folder_that_is_not_a_path_in_one_line(call, said):
    import cnnlab

    with pytest.raises(cnnlab.errors.CnnlabError) as refused:
        call(cnnlab)
    assert str(refused.value).startswith(said)


def test_overwrite_trains_into_a_users_folder_and_keeps_its_other_files(world, capsys):
    (world / "runs" / "mine" / "notes.txt").write_text("keep me")
    assert main([str(a) for a in train(world, "--name", "mine", "--overwrite")]) == 0
    folder = world / "runs" / "mine"
    assert (folder / "notes.txt").read_text() == "keep me" and (folder / "run.json").is_file()
    assert (folder / "metrics.csv").read_text().startswith("epoch,")  # asked for: replaced
