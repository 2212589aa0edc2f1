"""The explorer's data panel: the data sets found (where the runs found theirs, and cnnlab's usual places), a grid
of samples that really are of their class, and the augmentation preview equal to `cnnlab augment-preview`'s,
seeded, refusing what the library refuses; and the same in a real browser. (The panel's picture in
docs/explorer/datasets.png: `python tests/test_explorer_pages.py RUNS_DIR`.)"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_mnist, pixels
from fastapi.testclient import TestClient

from cnnlab.data import load_dataset
from cnnlab.data.augment import OPS, parse_augment, preview
from cnnlab.errors import CnnlabError
from cnnlab.serve import create_app
from cnnlab.serve.datasets import Place, place_id
from cnnlab.training.record import RunRecord

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def client(served_runs):
    return TestClient(create_app(served_runs), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def ids(served_runs) -> dict[str, str]:
    """run -> the id the data panel gives the place where that run found its data set."""
    found = {}
    for run in ("mlp-mnist", "lesson-cnn-cifar10"):
        config = RunRecord.load(served_runs / run).config
        found[run] = place_id(Place(config.dataset, config.data_root, config.image_size))
    return found


def listed(client) -> dict[str, dict]:
    return {entry["id"]: entry for entry in client.get("/api/datasets").json()}


def test_the_data_sets_of_the_runs_are_listed_where_they_found_them(client, served_runs, ids):
    entries = listed(client)
    mnist = entries[ids["mlp-mnist"]]
    assert mnist["runs"] == ["mlp-mnist", "mnist-cnn-mnist"]  # one place, two runs trained on it
    data = load_dataset("mnist", data_root=RunRecord.load(served_runs / "mlp-mnist").config.data_root)
    assert (mnist["source"], mnist["train_size"], mnist["test_size"], mnist["classes"], mnist["shape"]) == (
        data.source,
        len(data.train),
        len(data.test),
        data.classes,
        list(data.shape),
    )
    assert entries[ids["lesson-cnn-cifar10"]]["shape"] == [3, 32, 32]


def test_a_data_set_not_found_is_listed_with_the_command_that_fetches_it(client):
    entries = listed(client)
    # the usual places are empty in the tests; fashion-mnist no run found either
    assert entries["fashion-mnist"]["available"] is False
    assert entries["fashion-mnist"]["get"] == "cnnlab datasets fashion-mnist --download"
    assert "not found; looked in" in entries["fashion-mnist"]["reason"]
    answer = client.get("/api/datasets/samples?dataset=cifar10")
    assert answer.status_code == 400 and "get it with: cnnlab datasets cifar10 --download" in answer.json()["error"]


def test_a_data_set_a_run_found_is_not_also_listed_as_not_found(client):
    names = [(entry["name"], entry["available"]) for entry in client.get("/api/datasets").json()]
    for name in ("mnist", "cifar10"):  # not in the usual places, but where the runs found them
        assert (name, True) in names and (name, False) not in names


def test_data_set_ids_stay_when_runs_are_added(tmp_path, served_runs, ids):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(served_runs / "mnist-cnn-mnist", runs / "zz-mnist")
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    before = [entry["id"] for entry in client.get("/api/datasets").json() if entry["runs"]]
    shutil.copytree(served_runs / "mlp-mnist", runs / "aa-mnist")  # sorts first: it named the id before
    shutil.copytree(served_runs / "lesson-cnn-cifar10", runs / "ab-cifar")
    after = {entry["id"]: entry for entry in client.get("/api/datasets").json()}
    assert set(before) <= set(after) and after[ids["mlp-mnist"]]["runs"] == ["aa-mnist", "zz-mnist"]


def test_a_data_set_in_the_usual_places_is_found(client, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(make_mnist(tmp_path / "data", n_train=50, n_test=20)))
    mnist = listed(client)["mnist"]
    assert mnist["available"] and mnist["train_size"] == 50 and mnist["runs"] == []


def test_the_samples_are_of_their_class_and_seeded(client, served_runs, ids):
    data = load_dataset("mnist", data_root=RunRecord.load(served_runs / "mlp-mnist").config.data_root)
    query = f"/api/datasets/samples?dataset={ids['mlp-mnist']}&per_class=3&split=test"
    answer = client.get(query).json()
    assert [row["class"] for row in answer["rows"]] == data.classes
    for k, row in enumerate(answer["rows"]):
        members = data.test.images[data.test.labels == k][:, 0].numpy()
        assert row["count"] == len(members) and len(row["images"]) == min(3, len(members))
        for image in row["images"]:
            assert (members == pixels(image)).all(axis=(1, 2)).any()  # an image of that class, unchanged
    assert client.get(query).json() == answer
    assert client.get(query + "&seed=1").json() != answer


def test_the_augmentation_preview_is_the_library_grid(client, served_runs, ids):
    body = {"dataset": ids["lesson-cnn-cifar10"], "spec": "flip,rotate=30", "count": 3, "copies": 4, "seed": 7}
    answer = client.post("/api/datasets/augment", json=body).json()
    data = load_dataset("cifar10", data_root=RunRecord.load(served_runs / "lesson-cnn-cifar10").config.data_root)
    assert (pixels(answer["image"]) == preview(data.train.images[:3], "flip,rotate=30", 7, 4)).all()
    assert answer["spec"] == "flip,rotate=30" and answer["describe"] == parse_augment("flip,rotate=30").describe()


def test_the_preview_changes_with_the_controls_and_not_otherwise(client, ids):
    def grid(**change):
        body = {"dataset": ids["mlp-mnist"], "spec": "rotate=10", "seed": 0, **change}
        return pixels(client.post("/api/datasets/augment", json=body).json()["image"])

    first = grid()
    assert (grid() == first).all()  # the same seed draws the same
    for change in ({"spec": "rotate=40"}, {"spec": "rotate=10,cutout=8"}, {"seed": 1}):
        assert (grid(**change) != first).any(), change
    plain = grid(spec="")
    h = 28
    for column in range(1, 6):  # no augmentation: copies = originals
        assert (plain[:, column * (h + 2) : column * (h + 2) + h] == plain[:, :h]).all()


def test_the_augmentation_terms_are_the_library_s(client):
    answer = client.get("/api/datasets/augmentations").json()
    assert [op["name"] for op in answer["operations"]] == list(OPS)
    assert {op["name"]: op["default"] for op in answer["operations"]} == {n: k.default for n, k in OPS.items()}


def library_error(spec: str) -> str:
    with pytest.raises(CnnlabError) as refused:
        preview(np.zeros((1, 1, 28, 28), np.uint8), spec)
    return str(refused.value)


@pytest.mark.parametrize("spec", ["wobble", "rotate=500", "crop=1.5", "flip=2", "cutout=40"])
def test_a_spec_the_library_refuses_is_a_400_with_its_message(client, spec, ids):
    answer = client.post("/api/datasets/augment", json={"dataset": ids["mlp-mnist"], "spec": spec})
    assert answer.status_code == 400 and answer.json()["error"] == library_error(spec)


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("samples?dataset=/etc", 404, "no data set '/etc'"),
        ("samples?dataset=mnist@nothing", 404, "no data set 'mnist@nothing'"),
        ("samples?dataset=mnist@mlp-mnist&per_class=0", 400, "per_class 0: must be from 1 to 32"),
        ("samples?dataset=mnist@mlp-mnist&per_class=1000", 400, "per_class 1000"),
        ("samples?dataset=mnist@mlp-mnist&split=valid", 400, "split 'valid': use train or test"),
        ("samples?dataset=mnist@mlp-mnist&seed=-1", 400, "seed -1"),
    ],
)
def test_bad_sample_requests_are_one_line(client, path, status, words, ids):
    answer = client.get(f"/api/datasets/{path}".replace("mnist@mlp-mnist", ids["mlp-mnist"]))
    assert answer.status_code == status and words in answer.json()["error"] and "\n" not in answer.json()["error"]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"count": 0}, "count 0: must be from 1 to 16"),
        ({"copies": 11}, "copies 11: must be from 1 to 10"),
        ({"dataset": "../runs"}, "no data set '../runs'"),
    ],
)
def test_bad_preview_requests_are_one_line(client, change, words, ids):
    answer = client.post("/api/datasets/augment", json={"dataset": ids["mlp-mnist"], "spec": "flip", **change})
    assert 400 <= answer.status_code < 500 and words in answer.json()["error"]


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


def test_the_data_page_shows_a_grid_and_redraws_the_augmentation(browser, live_server, ids):
    from selenium.webdriver.common.keys import Keys

    browser.get(live_server + "#datasets")
    chosen = f'#datasets tr[data-id="{ids["mlp-mnist"]}"]'
    wait(browser, lambda: found(browser, chosen))[0].click()
    wait(browser, lambda: "mnist," in found(browser, "#datasets .card h2")[1].text)  # the name; the id is opaque

    def grid_of_mnist():  # one row per class, 8 images each (fewer if the class is smaller)
        rows = found(browser, "#datasets .class-row")
        names = [r.find_element("css selector", ".class-name").text.split("\n")[0] for r in rows]
        sizes = [int(r.find_element("css selector", "small").text.split()[0]) for r in rows]
        shown = [len(r.find_elements("css selector", "img")) for r in rows]
        return names == [str(d) for d in range(10)] and shown == [min(8, n) for n in sizes]

    wait(browser, grid_of_mnist)

    preview_image = found(browser, "#datasets img.preview")[0]
    wait(browser, lambda: preview_image.get_attribute("data-of") == ids["mlp-mnist"])
    first = preview_image.get_attribute("src")
    slider = found(browser, '#datasets input[data-value="rotate"]')[0]
    slider.send_keys(*[Keys.RIGHT] * 20)  # as a person drags it: the preview follows
    wait(browser, lambda: preview_image.get_attribute("data-spec") == "flip,rotate=30")  # 10 + 20 steps of 1
    assert preview_image.get_attribute("src") != first
    cutout = found(browser, '#datasets input[data-op="cutout"]')[0]
    cutout.click()
    wait(browser, lambda: preview_image.get_attribute("data-spec") == "flip,rotate=30,cutout=8")

    spec = found(browser, "#datasets input.spec")[0]
    spec.clear()
    spec.send_keys("wobble")
    error = found(browser, "#error")[0]
    wait(browser, lambda: error.is_displayed() and "unknown augmentation 'wobble'" in error.text)
