"""The explorer's training monitor: runs and their state, curves equal to the record, a confusion matrix equal to
what Predictor.evaluate counts, cells holding exactly their images ranked by loss, a run followed live while it
trains (through the endpoints and in a real browser), runs compared. (The explorer's pictures in docs/explorer:
`python tests/test_explorer_pages.py RUNS_DIR`.)"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_mnist, pixels, serving
from fastapi.testclient import TestClient

from cnnlab.plots.training import wide_range
from cnnlab.predict import Predictor
from cnnlab.serve import create_app
from cnnlab.training.config import make_config
from cnnlab.training.loop import train
from cnnlab.training.record import RunRecord, compare_table
from cnnlab.training.report import train_note

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def client(served_runs):
    return TestClient(create_app(served_runs), base_url="http://127.0.0.1")


def tiny_training(data: Path, epochs: int):
    """A config for an MLP on a fake MNIST of 200 images: a second an epoch at most."""
    if not data.exists():
        make_mnist(data, n_train=200, n_test=50)
    return make_config("mlp", "mnist", data_root=str(data), epochs=epochs, batch_size=32, precision="fp32")


def test_the_runs_are_listed_with_their_record(client, served_runs):
    rows = client.get("/api/monitor/runs").json()
    assert sorted(r["name"] for r in rows) == sorted(p.name for p in served_runs.iterdir())
    for row in rows:
        record = RunRecord.load(served_runs / row["name"])
        assert (row["model"], row["dataset"], row["epochs_done"], row["epochs_planned"]) == (
            record.model.name,
            record.data.name,
            record.epochs_done,
            record.config.recipe.epochs,
        )
        assert row["best_epoch"] == record.best.epoch and row["test_accuracy"] == record.test.accuracy
        assert row["state"] == "finished"


def test_the_curves_are_the_run_record(client, served_runs):
    answer = client.get("/api/monitor/runs/mnist-cnn-mnist/curves").json()
    record = RunRecord.load(served_runs / "mnist-cnn-mnist")
    assert answer["history"] == [dataclasses.asdict(e) for e in record.history]
    assert answer["best_epoch"] == record.best.epoch
    model = Predictor.from_run(served_runs / "mnist-cnn-mnist").model
    assert answer["train_note"] == train_note(model, record.config.recipe) != ""  # as curves.png says it


def test_the_loss_axis_is_logarithmic_when_its_range_is_wide():
    assert wide_range([0.01, 0.5, 2.3]) and not wide_range([0.2, 0.5, 2.3])
    assert not wide_range([0.0, 2.3]) and not wide_range([])  # a zero cannot go on a log axis


@pytest.mark.parametrize("name", ["mnist-cnn-mnist", "lesson-cnn-cifar10"])
def test_the_confusion_matrix_is_the_test_the_table_shows(client, served_runs, name):
    answer = client.get(f"/api/monitor/runs/{name}/confusion").json()
    record = RunRecord.load(served_runs / name)
    predictor = Predictor.from_run(served_runs / name)
    assert answer["counts"] == record.test.confusion
    assert answer["total"] == len(predictor.split("test")) == sum(map(sum, answer["counts"]))
    row = next(r for r in client.get("/api/monitor/runs").json() if r["name"] == name)
    assert answer["accuracy"] == record.test.accuracy == row["test_accuracy"]  # one number, exactly
    assert answer["classes"] == predictor.classes


def test_the_matrix_is_the_record_s_even_where_a_new_evaluation_would_differ(tmp_path, served_runs):
    """The explorer showed 97.97% beside its own table's 98.00%: it counted again, differently. The record's
    test is what it shows; altered here so that a recount could not match it by chance."""
    runs = tmp_path / "runs"
    shutil.copytree(served_runs / "mlp-mnist", runs / "mlp-mnist")
    record = RunRecord.load(runs / "mlp-mnist")
    confusion = np.array(record.test.confusion)
    moved = int(confusion[0].argmax())
    confusion[0, moved] -= 1
    confusion[0, (moved + 1) % 10] += 1
    record.test = dataclasses.replace(
        record.test, confusion=confusion.tolist(), accuracy=float(np.trace(confusion) / confusion.sum())
    )
    record.save(runs / "mlp-mnist")
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    answer = client.get("/api/monitor/runs/mlp-mnist/confusion").json()
    assert answer["counts"] == confusion.tolist() and answer["accuracy"] == record.test.accuracy


def test_a_cell_holds_exactly_its_images_most_confident_mistakes_first(client, served_runs):
    name = "lesson-cnn-cifar10"
    counts = np.array(client.get(f"/api/monitor/runs/{name}/confusion").json()["counts"])
    predictor = Predictor.from_run(served_runs / name)
    test = predictor.split("test")
    probabilities = predictor.probabilities(test.images)
    checked = 0
    for true, predicted in zip(*np.nonzero(counts)):
        cell = client.get(f"/api/monitor/runs/{name}/confusion/{true}/{predicted}").json()
        assert cell["count"] == counts[true, predicted] == len(cell["images"])
        for shown in cell["images"]:
            i = shown["index"]
            assert int(test.labels[i]) == true and int(probabilities[i].argmax()) == predicted
            assert shown["probability"] == pytest.approx(float(probabilities[i, predicted]), abs=1e-5)
            assert shown["true_probability"] == pytest.approx(float(probabilities[i, true]), abs=1e-5)
            assert (pixels(shown["image"]) == test.images[i].permute(1, 2, 0).numpy()).all()
        losses = [shown["loss"] for shown in cell["images"]]
        assert losses == sorted(losses, reverse=True)  # highest loss first: top losses
        checked += len(losses)
    assert checked == len(test)  # every test image is in exactly one cell
    limited = client.get(f"/api/monitor/runs/{name}/confusion/{true}/{predicted}?limit=1").json()
    assert len(limited["images"]) == min(1, counts[true, predicted])


def test_runs_are_compared_as_cnnlab_compare_does(client, served_runs):
    names = ["mlp-mnist", "mnist-cnn-mnist"]
    answer = client.post("/api/monitor/compare", json={"runs": names, "metric": "valid_loss"}).json()
    records = [RunRecord.load(served_runs / n) for n in names]
    assert [s["values"] for s in answer["series"]] == [[e.valid_loss for e in r.history] for r in records]
    assert answer["table"] == compare_table(names, records)


@pytest.mark.parametrize(
    "method, path, body, status, words",
    [
        ("get", "runs/nope/curves", None, 404, "no run named 'nope'"),
        ("get", "runs/%2E%2E/curves", None, 404, "no run named '..'"),
        ("get", "runs/mlp-mnist/confusion/0/10", None, 400, "predicted class 10: this run has classes 0 to 9"),
        ("get", "runs/mlp-mnist/confusion/-1/0", None, 400, "true class -1"),
        ("get", "runs/mlp-mnist/confusion/0/0?limit=0", None, 400, "limit 0: must be from 1 to 500"),
        ("post", "compare", {"runs": [], "metric": "valid_acc"}, 400, "0 runs to compare"),
        ("post", "compare", {"runs": ["mlp-mnist"], "metric": "speed"}, 400, "metric 'speed': use one of"),
        ("post", "compare", {"runs": ["gone"]}, 400, "none of the runs can be compared: no run named 'gone'"),
    ],
)
def test_bad_requests_are_one_line(client, method, path, body, status, words):
    answer = getattr(client, method)(f"/api/monitor/{path}", **({"json": body} if body else {}))
    assert answer.status_code == status and words in answer.json()["error"]
    assert "\n" not in answer.json()["error"]


def test_a_run_that_stopped_says_how_to_continue(tmp_path, served_runs):
    runs = tmp_path / "runs"
    for status in ("running", "interrupted"):  # a killed process leaves "running" behind, Ctrl-C "interrupted"
        folder = runs / f"stopped-{status}"
        shutil.copytree(served_runs / "mlp-mnist", folder)
        record = RunRecord.load(folder)
        record.status = status
        record.save(folder)
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    rows = {r["name"]: r for r in client.get("/api/monitor/runs").json()}
    for status in ("running", "interrupted"):
        row = rows[f"stopped-{status}"]
        assert row["state"] == "stopped" and f"cnnlab train --resume {runs.resolve()}/stopped-{status}" in row["detail"]


def test_a_run_whose_data_set_moved_says_so_in_one_line(tmp_path, served_runs):
    folder = tmp_path / "runs" / "moved"
    shutil.copytree(served_runs / "mlp-mnist", folder)
    record = RunRecord.load(folder)
    record.config.data_root = str(tmp_path / "gone")
    record.save(folder)
    client = TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1")
    answer = client.get("/api/monitor/runs/moved/confusion")
    error = answer.json()["error"]
    assert answer.status_code == 400 and "\n" not in error
    assert error.startswith("run 'moved': its test images cannot be read: data set 'mnist' not found")


def test_a_run_in_training_is_seen_at_each_epoch(tmp_path):
    client = TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1")
    seen = []

    def look(epoch, run):
        stamp = client.get("/api/monitor/stamps").json()["mlp"]
        curves = client.get("/api/monitor/runs/mlp/curves").json()
        confusion = client.get("/api/monitor/runs/mlp/confusion").json()  # the weights of this epoch on test
        seen.append((stamp, curves["run"]["state"], len(curves["history"]), confusion["total"]))
        assert client.get("/api/monitor/stamps").json()["mlp"] == stamp  # unchanged until the next epoch

    train(
        tiny_training(tmp_path / "data", epochs=2),
        tmp_path / "runs" / "mlp",
        progress=False,
        log=lambda line: None,
        on_epoch_end=look,
    )
    (first, *during_1), (second, *during_2) = seen
    assert during_1 == ["training", 1, 50] and during_2 == ["training", 2, 50] and first != second
    assert client.get("/api/monitor/stamps").json()["mlp"] != second
    assert client.get("/api/monitor/runs/mlp/curves").json()["run"]["state"] == "finished"


# ---------------------------------------------------------------- in a real browser


def wait(browser, condition, timeout=20):
    """Until `condition()` is true; an element the page replaced meanwhile just means: look again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda _: condition()
    )


def found(browser, css):
    return browser.find_elements("css selector", css)


def test_the_monitor_page_shows_curves_a_cell_and_a_comparison(browser, live_server, served_runs):
    browser.get(live_server + "#monitor")
    wait(browser, lambda: len(found(browser, "#monitor table.runs tbody tr")) == 3)
    found(browser, '#monitor tr[data-run="mnist-cnn-mnist"] td.name')[0].click()
    wait(browser, lambda: found(browser, "#monitor .run-detail h2")[0].text == "mnist-cnn-mnist")
    epochs = len(RunRecord.load(served_runs / "mnist-cnn-mnist").history)
    for chart in ("loss", "accuracy"):  # train and validation: one point per epoch each
        wait(browser, lambda: len(found(browser, f'#monitor svg[data-chart="{chart}"] circle')) == 2 * epochs)

    cells = wait(
        browser,
        lambda: [
            td for td in found(browser, '#monitor .matrix[data-run="mnist-cnn-mnist"] td') if td.text not in ("", "0")
        ],
    )
    mistakes = [td for td in cells if td.get_attribute("data-true") != td.get_attribute("data-predicted")]
    cell = (mistakes or cells)[0]
    count = int(cell.text)
    cell.click()
    wait(browser, lambda: len(found(browser, "#monitor .thumbs img")) == min(count, 60))
    title = found(browser, "#monitor .cell h3")[0].text
    assert f": {count} image" in title and title.startswith("true ")

    for name in ("mlp-mnist", "mnist-cnn-mnist"):
        found(browser, f'#monitor tr[data-run="{name}"] input[type=checkbox]')[0].click()
    wait(browser, lambda: len(found(browser, '#monitor svg[data-chart="compare"] path.line')) == 2)
    assert "mlp-mnist" in found(browser, "#monitor pre.compare-table")[0].text


def test_the_page_follows_a_run_while_it_trains(browser, tmp_path):
    config = tiny_training(tmp_path / "data", epochs=3)
    runs = tmp_path / "runs"
    shown = []

    def page_shows_the_epoch(epoch, run):
        if epoch == 1:
            browser.get(url + "#monitor")
        cell = '#monitor tr[data-run="mlp"] td:nth-child(5)'
        started = time.perf_counter()
        wait(browser, lambda: found(browser, cell) and found(browser, cell)[0].text == f"{epoch} / 3", timeout=10)
        wait(browser, lambda: len(found(browser, '#monitor svg[data-chart="loss"] circle')) == 2 * epoch, timeout=10)
        shown.append(time.perf_counter() - started)
        assert "training" in found(browser, '#monitor tr[data-run="mlp"] .state')[0].text

    with serving(runs) as url:
        train(config, runs / "mlp", progress=False, log=lambda line: None, on_epoch_end=page_shows_the_epoch)
        wait(browser, lambda: found(browser, '#monitor tr[data-run="mlp"] .state')[0].text == "finished", timeout=10)
    assert len(shown) == 3 and max(shown[1:]) < 5  # each epoch on the page within a poll or two


def test_one_broken_run_is_left_out_of_a_comparison_and_named(tmp_path, served_runs):
    runs = tmp_path / "runs"
    for name in ("mlp-mnist", "mnist-cnn-mnist"):
        shutil.copytree(served_runs / name, runs / name)
    (runs / "mnist-cnn-mnist" / "run.json").write_text("{ not json")
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    answer = client.post("/api/monitor/compare", json={"runs": ["mlp-mnist", "mnist-cnn-mnist", "gone"]})
    assert answer.status_code == 200
    assert [s["run"] for s in answer.json()["series"]] == ["mlp-mnist"]
    skipped = {s["run"]: s["error"] for s in answer.json()["skipped"]}
    assert set(skipped) == {"mnist-cnn-mnist", "gone"} and "run.json" in skipped["mnist-cnn-mnist"]
    assert answer.json()["table"] == compare_table(["mlp-mnist"], [RunRecord.load(runs / "mlp-mnist")])


def test_the_newest_run_that_can_be_shown_comes_first(tmp_path, served_runs):
    runs = tmp_path / "runs"
    for name in ("mlp-mnist", "mnist-cnn-mnist"):
        shutil.copytree(served_runs / name, runs / name)
        time.sleep(0.05)  # mnist-cnn-mnist is the newest
    (runs / "mnist-cnn-mnist" / "run.json").write_text("{ not json")
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    for path, broken in (("/api/monitor/runs", "error"), ("/api/explore/runs", "problem")):
        listed = client.get(path).json()
        assert [r["name"] for r in listed] == ["mlp-mnist", "mnist-cnn-mnist"], path
        assert not listed[0].get(broken) and listed[1][broken]


def test_the_train_note_follows_the_run_s_dropout_not_the_model_s_default(tmp_path, served_runs):
    runs = tmp_path / "runs"
    shutil.copytree(served_runs / "lesson-cnn-cifar10", runs / "no-dropout")
    record = RunRecord.load(runs / "no-dropout")
    record.config.recipe = dataclasses.replace(record.config.recipe, dropout=0.0)
    record.save(runs / "no-dropout")
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    note = client.get("/api/monitor/runs/no-dropout/curves").json()["train_note"]
    assert "dropout" not in note
    record.config.recipe = dataclasses.replace(record.config.recipe, dropout=0.3)
    record.save(runs / "no-dropout")
    assert "dropout on" in client.get("/api/monitor/runs/no-dropout/curves").json()["train_note"]
