"""Runs written before the preprocessing was stored in run.json still load, predict and resume as they did.

tests/old_runs/*/run.json are records exactly as cnnlab wrote them before (commit 6a102ba: one epoch of mlp on
conftest's fake MNIST, of lesson-cnn on its fake CIFAR-10); answers.json holds what that code answered for the
images below, with the weights these tests make (seed 0). No weights are kept: they are made here.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_mnist
from PIL import Image

from cnnlab.models import create_model
from cnnlab.predict import Predictor
from cnnlab.serve.explore import model_input
from cnnlab.training.checkpoint import save_state, save_training_state
from cnnlab.training.optimizer import make_optimizer
from cnnlab.training.record import RunRecord

OLD_RUNS = Path(__file__).parent / "old_runs"
ANSWERS = json.loads((OLD_RUNS / "answers.json").read_text())
# what the rules of the time gave these runs: MNIST light on dark and drawn as MNIST digits; CIFAR-10 neither
FILLED = {"mlp-mnist": (True, "mnist-digit"), "lesson-cnn-cifar10": (False, "")}


def old_run(name: str, folder: Path) -> Path:
    """The old run.json in `folder`, with its weights made from seed 0, as when answers.json was written."""
    folder.mkdir(parents=True)
    shutil.copy(OLD_RUNS / name / "run.json", folder / "run.json")
    record = json.loads((folder / "run.json").read_text())
    torch.manual_seed(0)
    model = create_model(record["model"]["name"], **record["model"]["args"])
    save_state(folder / "best.safetensors", model.state_dict())
    return folder


def images(shape):
    """A dark-on-light grey picture (inverted for MNIST-style runs) and a light-on-dark colour one of another size."""
    rng = np.random.default_rng(7)
    _, h, w = shape
    dark_on_light = 255 - (rng.random((h, w)) * 60).astype(np.uint8)
    dark_on_light[h // 4 : 3 * h // 4, w // 2 - 2 : w // 2 + 2] = 10
    light_on_dark = (rng.random((h + 9, w + 3, 3)) * 80).astype(np.uint8)
    light_on_dark[5:20, 8:12] = 240
    return [Image.fromarray(dark_on_light), Image.fromarray(light_on_dark)]


@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_old_run_loads_and_predicts_as_before(tmp_path, name):
    assert "light_on_dark" not in (OLD_RUNS / name / "run.json").read_text()  # the fixture is of the old format
    folder = old_run(name, tmp_path / name)
    answers = ANSWERS[name]
    record = RunRecord.load(folder)
    assert (record.data.light_on_dark, record.data.drawing) == FILLED[name]
    predictor = Predictor.from_run(folder)
    p = predictor.preprocess
    assert [list(p.shape), list(p.mean), list(p.std), p.light_on_dark] == list(answers["preprocess"].values())
    pictures = images(p.shape)
    assert predictor.prepare(pictures)[1] == answers["notes"]
    top_k = predictor.top_k(pictures, k=3)
    assert [[c for c, _ in row] for row in top_k] == [[c for c, _ in row] for row in answers["top_k"]]
    got = np.array([[s for _, s in row] for row in top_k])
    assert np.allclose(got, [[s for _, s in row] for row in answers["top_k"]], rtol=0, atol=1e-6)
    drawn = [model_input(predictor, picture, drawing=True) for picture in pictures]  # the explorer's canvas
    assert [notes for _, notes in drawn] == answers["drawing_notes"]
    assert [int(pixels.sum()) for pixels, _ in drawn] == answers["drawing_pixels_sum"]


def test_the_filled_fields_are_written_once_and_then_read_as_stored(tmp_path):
    folder = old_run("mlp-mnist", tmp_path / "run")
    RunRecord.load(folder).save(folder)
    stored = json.loads((folder / "run.json").read_text())["data"]
    assert (stored["light_on_dark"], stored["drawing"]) == (True, "mnist-digit")
    stored["light_on_dark"], stored["drawing"] = False, ""  # as stored, not as the data set's name would say
    text = json.loads((folder / "run.json").read_text())
    text["data"] = stored
    (folder / "run.json").write_text(json.dumps(text))
    preprocess = Predictor.from_run(folder).preprocess
    assert (preprocess.light_on_dark, preprocess.drawing) == (False, "")


def test_a_bad_drawing_in_a_record_is_refused_in_one_line(tmp_path):
    folder = old_run("lesson-cnn-cifar10", tmp_path / "run")
    text = json.loads((folder / "run.json").read_text())
    text["data"]["drawing"] = "mnist-digit"  # a colour run cannot take MNIST digits
    (folder / "run.json").write_text(json.dumps(text))
    with pytest.raises(Exception, match=r"run.json: data.drawing 'mnist-digit' for \[3, 32, 32\] images") as refused:
        RunRecord.load(folder)
    assert "\n" not in str(refused.value)


def test_an_old_run_resumes_and_keeps_its_preprocessing(tmp_path):
    """The old record in last.safetensors (the commit point) with two epochs asked for: resumed, it trains the
    second on its recipe's batch (shrunk to the 480 images then) and keeps the preprocessing it had."""
    import cnnlab

    root = make_mnist(tmp_path / "data")  # conftest's fake MNIST, as the run was trained on
    folder = old_run("mlp-mnist", tmp_path / "run")
    record = json.loads((folder / "run.json").read_text())
    record["config"]["recipe"]["epochs"] = 2
    record["status"] = "interrupted"
    (folder / "run.json").write_text(json.dumps(record))
    model = create_model("mlp", **record["model"]["args"])
    optimizer = make_optimizer(RunRecord.from_dict(json.loads(json.dumps(record)), "run.json").config.recipe, model)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    save_training_state(folder / "last.safetensors", model, optimizer, 1, best, record)
    lines = []
    cnnlab.resume(folder, data_root=root, progress=False, log=lines.append)
    assert lines[0] == f"resuming {folder} after epoch 1 of 2" and "train loss" in lines[2]
    resumed = RunRecord.load(folder)
    assert resumed.status == "finished" and resumed.epochs_done == 2 and resumed.config.recipe.batch_size == 480
    assert (resumed.data.light_on_dark, resumed.data.drawing, resumed.config.overridden) == (True, "mnist-digit", [])
