"""The explorer's pages explain themselves and stay honest: each panel's introduction and lesson link, terms defined
on hover from one glossary, colour legends, the kernel's multiply-add on the picture's own pixels, a trained first
layer taken apart channel by channel; and the screen defects of issue 30 (stale answers beside an error, messages
that never reached the page, pictures that said nothing), each driven in a real headless Chromium.

    python tests/test_explorer_pages.py RUNS_DIR     # retakes docs/explorer/*.png over the runs in RUNS_DIR
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pixels, serving
from fastapi.testclient import TestClient

from cnnlab.filters import KERNELS, apply_kernel
from cnnlab.serve import create_app

pytestmark = pytest.mark.usefixtures("one_thread")
PANELS = ("explore", "kernels", "convolution", "monitor", "datasets")
GLOSSARY = Path(__file__).resolve().parents[1] / "src" / "cnnlab" / "serve" / "static" / "glossary.js"


@pytest.fixture(scope="module")
def client(served_runs):
    return TestClient(create_app(served_runs), base_url="http://127.0.0.1")


def wait(browser, condition, timeout=30):
    """Until `condition()` is true; an element the page replaced meanwhile just means: look again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda _: condition()
    )


def found(browser, css):
    return browser.find_elements("css selector", css)


def first(browser, css):
    """The first element `css` finds, once the page has made one."""
    return wait(browser, lambda: found(browser, css))[0]


def choose(browser, select, value):
    """Pick `value` in the <select> `select`, once the page has listed it."""
    from selenium.webdriver.support.ui import Select

    Select(first(browser, f"{select} option[value='{value}']").find_element("xpath", "..")).select_by_value(value)


def text(browser, css) -> str:
    return browser.execute_script("return document.querySelector(arguments[0])?.textContent ?? ''", css)


def open_panel(browser, url, panel):
    browser.get(url + "#" + panel)
    browser.refresh()  # the hash alone would not reload a page already open
    wait(browser, lambda: found(browser, f"#{panel} .intro"))


def glossary() -> dict[str, str]:
    """The glossary's terms as glossary.js declares them: id -> definition."""
    source = GLOSSARY.read_text()
    body = source[source.index("export const TERMS") : source.index("export const LAYER_TERMS")]
    entries = re.findall(r'"?([\w-]+)"?: \["[^"]+", ((?:"[^"]*"(?: \+\s*)?)+)\]', body)
    return {key: "".join(re.findall(r'"([^"]*)"', parts)) for key, parts in entries}


# ---------------------------------------------------------------- the server's side of what the page shows


def test_the_page_takes_the_attribution_methods_from_the_api(client):
    methods = client.get("/api/explore/methods").json()
    assert [m["name"] for m in methods] == ["gradcam", "saliency", "occlusion"]
    assert [m["signed"] for m in methods] == [False, False, True]  # occlusion: evidence for and against
    for name in ("explore.js", "app.js"):
        assert '"occlusion"' not in (GLOSSARY.parent / name).read_text()


def test_occlusion_says_where_the_evidence_for_and_against_is(client, served_runs):
    image = client.get("/api/explore/random", params={"run": "lesson-cnn-cifar10", "index": 3}).json()["image"]
    answer = client.post(
        "/api/explore/attribution",
        json={"run": "lesson-cnn-cifar10", "image": image, "target": 2, "method": "occlusion"},
    ).json()
    heat = np.frombuffer(__import__("base64").b64decode(answer["heat"]["data"]), np.uint8).reshape(32, 32)
    low, high = answer["range"]
    assert answer["signed"] and (low < 0 or high > 0)
    if high > 0:
        assert answer["strongest_for"] == list(np.unravel_index(heat.argmax(), heat.shape))
    if low < 0:
        assert answer["strongest_against"] == list(np.unravel_index(heat.argmin(), heat.shape))


def test_a_negative_sum_kernel_is_shown_signed_not_black(client):
    answer = client.post("/api/kernels/filter", json={"kernel": [[0, 0, 0], [0, -1, 0], [0, 0, 0]]}).json()
    assert answer["display"] == "signed" and "sum to -1 < 0" in answer["why"]
    shown = pixels(answer["filtered"])
    assert shown.mean() > 40 and shown.std() > 5  # the negated picture, not an all-black one
    assert "sum to 0" in client.post("/api/kernels/filter", json={"kernel": "sobel-x"}).json()["why"]


def test_weights_too_large_are_refused_in_one_line(client):
    answer = client.post("/api/kernels/filter", json={"kernel": [["1e308", 0, 0], [0, 0, 0], [0, 0, 0]]})
    assert answer.status_code == 400 and "too large" in answer.json()["error"]


def test_a_stride_longer_than_the_window_says_which_rows_it_skips(client):
    plan = client.get("/api/convolution/sizes", params={"size": 8, "kernel": 2, "stride": 3}).json()
    assert any("1 row and column are skipped" in line for line in plan["explanation"])


def test_the_first_conv_layer_taken_apart_adds_up_to_its_output(client, served_runs):
    from cnnlab.predict import Predictor

    image = client.get("/api/explore/random", params={"run": "lesson-cnn-cifar10", "index": 5}).json()["image"]
    answer = client.post(
        "/api/explore/first-conv", json={"run": "lesson-cnn-cifar10", "image": image, "channel": 3}
    ).json()
    kernels, partials = np.array(answer["kernels"]), np.array(answer["partials"])
    assert kernels.shape[0] == partials.shape[0] == 3 and len(answer["inputs"]) == 3
    assert np.allclose(partials.sum(0) + answer["bias"], answer["output"], atol=1e-3)

    predictor = Predictor.from_run(served_runs / "lesson-cnn-cifar10")  # the same layer, read independently
    conv = next(m for m in predictor.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert np.allclose(kernels, conv.weight[3].detach().numpy(), atol=1e-4)
    assert answer["bias"] == pytest.approx(float(conv.bias.detach()[3]), abs=1e-5)
    seen = {}
    hook = conv.register_forward_hook(lambda m, args, out: seen.update(out=out))
    from PIL import Image

    with torch.no_grad():
        predictor.scores(predictor.prepare([Image.fromarray(pixels(image))])[0])
    hook.remove()
    assert np.allclose(answer["output"], seen["out"][0, 3].numpy(), atol=1e-3)

    refused = client.post("/api/explore/first-conv", json={"run": "mlp-mnist", "image": image})
    assert refused.status_code == 400 and "has no conv layer" in refused.json()["error"]


# ---------------------------------------------------------------- each panel explains itself


def test_a_lesson_link_downloads_its_notebook_and_names_only_notebooks(client, tmp_path, monkeypatch):
    notebook = {"cells": [{"cell_type": "markdown", "source": ["# 6. The convolutional layer"]}], "nbformat": 4}
    (tmp_path / "06-conv-layer.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "secret.txt").write_text("not a lesson")
    monkeypatch.setattr("cnnlab.serve.lessons.LESSON_FOLDER", tmp_path)
    answer = client.get("/api/lessons/06-conv-layer.ipynb")
    assert answer.status_code == 200 and answer.json() == notebook
    assert 'filename="06-conv-layer.ipynb"' in answer.headers["content-disposition"]
    for name in ("secret.txt", "07-cifar-cnn.ipynb"):
        refused = client.get(f"/api/lessons/{name}")
        assert refused.status_code == 404 and "`cnnlab lessons` lists them" in refused.json()["error"]
    assert client.get("/api/lessons/..%2F06-conv-layer.ipynb").status_code == 404


@pytest.mark.parametrize("panel", PANELS)
def test_each_panel_opens_with_an_introduction_a_lesson_and_defined_terms(browser, live_server, panel):
    from selenium.webdriver.common.action_chains import ActionChains

    open_panel(browser, live_server, panel)
    intro = found(browser, f"#{panel} .intro")[0]
    assert len(intro.find_elements("css selector", "p")) >= 3  # a few sentences and the lessons
    lesson = intro.find_element("css selector", "a.lesson")
    assert re.fullmatch(r"Lesson \d+: .+ \(run cnnlab lessons\)", lesson.text)
    assert re.fullmatch(r"api/lessons/\d\d-[a-z0-9-]+\.ipynb", lesson.get_attribute("href").split("/", 3)[3])
    terms = intro.find_elements("css selector", "dfn.term")
    assert terms
    definitions = glossary()
    for term in terms[:3]:
        ActionChains(browser).move_to_element(term).perform()
        tip = found(browser, "#tooltip")[0]
        wait(browser, lambda: tip.is_displayed())
        assert definitions[term.get_attribute("data-term")] in tip.text
        box, under = tip.rect, term.rect
        assert abs(box["y"] - (under["y"] + under["height"])) < 20  # beside the word hovered
    ActionChains(browser).move_to_element(found(browser, "header h1")[0]).perform()
    wait(browser, lambda: not found(browser, "#tooltip")[0].is_displayed())


def test_every_term_the_issue_names_is_in_the_one_glossary():
    named = [
        "logit",
        "softmax",
        "label smoothing",
        "BatchNorm",
        "ReLU",
        "stride",
        "padding",
        "dilation",
        "receptive field",
        "Fourier spectrum",
        "Grad-CAM",
        "saliency",
        "occlusion",
    ]
    shown = re.findall(r'\["([^"]+)", "', GLOSSARY.read_text())
    assert set(named) <= set(shown)
    static = GLOSSARY.parent
    for page in static.glob("*.js"):  # the definitions live in one module only
        if page.name != "glossary.js":
            assert "Rectified linear unit" not in page.read_text() and "data-definition" not in page.read_text()


# ---------------------------------------------------------------- Look inside


def test_heat_maps_have_a_legend_and_occlusion_is_not_strongest_at(browser, live_server):
    from selenium.webdriver.support.ui import Select

    open_panel(browser, live_server, "explore")
    choose(browser, "#explore select.runs", "lesson-cnn-cifar10")
    wait(browser, lambda: len(found(browser, "#explore button.bar")) == 10)
    assert [o.text for o in Select(found(browser, "#explore select.method")[0]).options] == [
        "Grad-CAM",
        "Saliency",
        "Occlusion",
    ]
    found(browser, "#explore button.bar")[2].click()
    # an unsigned map names its strongest point, or says it is zero (Grad-CAM rectifies: a one-epoch net may have none)
    wait(
        browser,
        lambda: any(
            said in text(browser, "#explore .evidence > p.caption:last-child")
            for said in ("Strongest at", "Zero everywhere")
        ),
    )
    assert "bright = strong evidence" in text(browser, "#explore .evidence .legend")
    Select(found(browser, "#explore select.method")[0]).select_by_value("occlusion")
    wait(browser, lambda: "blue" in text(browser, "#explore .evidence .legend"))
    caption = wait(
        browser, lambda: (lambda t: "against" in t and t)(text(browser, "#explore .evidence > p.caption:last-child"))
    )
    assert "Strongest at" not in caption and "Red speaks for the class, blue against it" in caption
    assert "blue = evidence against the class" in text(browser, "#explore .evidence .legend")


def test_label_smoothing_is_said_where_probabilities_are_shown(browser, live_server, served_runs):
    from cnnlab.training.record import RunRecord

    open_panel(browser, live_server, "explore")
    smoothed = {
        run: RunRecord.load(served_runs / run).config.recipe.label_smoothing for run in ("mnist-cnn-mnist", "mlp-mnist")
    }
    assert smoothed["mnist-cnn-mnist"] > 0 and smoothed["mlp-mnist"] == 0  # both cases are seen
    for run, smoothing in smoothed.items():
        choose(browser, "#explore select.runs", run)
        first(browser, "#explore button.random").click()  # probabilities shown: a test image's
        wait(browser, lambda: len(found(browser, "#explore button.bar")) == 10)
        note = found(browser, "#explore .smoothing")[0]
        if smoothing:
            wait(browser, note.is_displayed)
            assert f"label smoothing {smoothing:g}" in note.text and "caps confidence" in note.text
            top = 1 - smoothing + smoothing / 10
            assert f"{top:.3f}, not 1" in note.text
        else:
            wait(browser, lambda: not note.is_displayed())


def test_a_failed_upload_clears_the_last_answer_and_says_why_at_the_upload(browser, live_server, tmp_path):
    open_panel(browser, live_server, "explore")
    choose(browser, "#explore select.runs", "lesson-cnn-cifar10")
    wait(browser, lambda: len(found(browser, "#explore button.bar")) == 10 and found(browser, "#explore .layer"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")
    found(browser, "#explore input.file")[0].send_keys(str(broken))
    error = found(browser, "#explore .source .panel-error")[0]
    wait(browser, error.is_displayed)
    assert "upload" in error.text and "\n" not in error.text
    assert not found(browser, "#explore button.bar") and not found(browser, "#explore .layer")
    assert not found(browser, "#explore img.seen")[0].get_attribute("src")
    assert found(browser, "#error")[0].get_attribute("hidden") is not None  # not at the bottom of the window
    found(browser, "#explore button.random")[0].click()  # a good input: all back
    wait(browser, lambda: len(found(browser, "#explore button.bar")) == 10)
    assert not error.is_displayed()


# ---------------------------------------------------------------- Kernels


def readout(browser) -> dict:
    """The multiply-add under the pointer as the page shows it: pixels, kernel, products (lists), sum, position."""
    return browser.execute_script("""
        const box = document.querySelector('#kernels .readout');
        const grid = (name) => [...box.querySelectorAll(`.numbers.${name} span`)].map((s) => Number(s.dataset.value));
        const sum = box.querySelector('.sum b');
        const where = box.querySelector('p')?.textContent.match(/row (\\d+), column (\\d+)/);
        return sum && { pixels: grid('pixels'), kernel: grid('kernel'), products: grid('products'),
                        sum: Number(sum.dataset.value), row: Number(where[1]), column: Number(where[2]) };""")


def test_the_multiply_add_under_the_pointer_is_the_kernel_on_the_shown_pixels(browser, live_server):
    from selenium.webdriver.common.action_chains import ActionChains

    open_panel(browser, live_server, "kernels")
    picture = found(browser, "#kernels figure.drop img")[0]
    wait(browser, lambda: picture.get_attribute("src") and found(browser, "#kernels .figures img[alt=filtered][src]"))
    shown = pixels(picture.get_attribute("src"))
    assert shown.ndim == 2  # grey: the picture the kernel is applied to
    filtered = apply_kernel(shown, KERNELS["sobel-x"].matrix)
    seen = []
    for dx, dy in ((-100, -40), (30, 60)):
        ActionChains(browser).move_to_element_with_offset(picture, dx, dy).perform()
        numbers = wait(browser, lambda: (lambda n: n and (n["row"], n["column"]) not in seen and n)(readout(browser)))
        seen.append((numbers["row"], numbers["column"]))
        row, column = numbers["row"], numbers["column"]
        assert numbers["pixels"] == shown[row - 1 : row + 2, column - 1 : column + 2].ravel().tolist()
        assert numbers["kernel"] == KERNELS["sobel-x"].matrix.ravel().tolist()
        assert numbers["products"] == [p * k for p, k in zip(numbers["pixels"], numbers["kernel"])]
        assert numbers["sum"] == sum(numbers["products"])
        assert numbers["sum"] == pytest.approx(float(filtered[row, column]), abs=1e-3)  # what filter2D computes
    assert found(browser, "#kernels .frame .window")[0].is_displayed()  # the window drawn on the picture


def test_a_kernel_cell_that_is_not_a_number_says_so_by_the_grid(browser, live_server):
    open_panel(browser, live_server, "kernels")
    wait(browser, lambda: found(browser, "#kernels .figures img[alt=filtered][src]"))
    cell = found(browser, "#kernels .kernel-grid input")[0]
    cell.clear()
    cell.send_keys("abc")
    error = found(browser, "#kernels .kernel-error")[0]
    wait(browser, error.is_displayed)
    assert error.text == "kernel row 1, column 1: 'abc' is not a number; type one like -1, 0.5 or 1/9"
    assert "stale" in found(browser, "#kernels img[alt=filtered]")[0].get_attribute("class")
    assert "out of date" in text(browser, "#kernels .figures figure:nth-child(2) figcaption:last-child")
    assert found(browser, "#error")[0].get_attribute("hidden") is not None
    cell.clear()
    cell.send_keys("1e308")
    wait(browser, lambda: "too large" in error.text)
    cell.clear()
    cell.send_keys("-1")
    wait(browser, lambda: not error.is_displayed())
    assert "stale" not in (found(browser, "#kernels img[alt=filtered]")[0].get_attribute("class") or "")
    assert found(browser, "#kernels figure .legend-bar")  # what black and white stand for


# ---------------------------------------------------------------- Convolution


def set_number(browser, name, value):
    browser.execute_script(
        "const input = document.querySelector(`#convolution input[name=${arguments[0]}]`);"
        "input.value = arguments[1]; input.dispatchEvent(new Event('input'));",
        name,
        value,
    )


def test_the_window_that_does_not_fit_and_the_rows_a_stride_skips_are_said(browser, live_server):
    open_panel(browser, live_server, "convolution")
    wait(browser, lambda: "output 5x5" in text(browser, "#convolution .arithmetic"))
    set_number(browser, "kernel", 2)
    set_number(browser, "stride", 3)
    wait(browser, lambda: "skipped" in text(browser, "#convolution .explanation"))
    assert found(browser, "#convolution svg.grid rect.never")  # the skipped pixels, hatched
    assert found(browser, "#convolution .never-note")[0].is_displayed()
    set_number(browser, "size", 3)
    set_number(browser, "kernel", 7)
    set_number(browser, "stride", 1)
    wait(browser, lambda: "does not fit" in text(browser, "#convolution pre.formula"))
    formula = text(browser, "#convolution pre.formula")
    assert "-1" not in formula and "no output" in formula
    assert text(browser, "#convolution .where") == ""
    assert "no output" in text(browser, "#convolution .arithmetic")


def test_one_channel_of_the_trained_first_layer_is_its_kernels_summed_plus_the_bias(browser, live_server):
    open_panel(browser, live_server, "convolution")
    choose(browser, "#convolution .first-conv select", "lesson-cnn-cifar10")
    wait(browser, lambda: len(found(browser, "#convolution .channel-row")) == 3)
    assert "red" in text(browser, "#convolution .channel-rows") and "bias" in text(browser, "#convolution .total")
    found(browser, "#convolution .channel-row img.map")[2].click()  # a pixel of the first partial map
    sum_text = text(browser, "#convolution pre.channel-sum")
    numbers = [
        float(n) for n in re.findall(r"\(?(-?\d+(?:\.\d+)?(?:e-?\d+)?)\)? \((?:red|green|blue|bias)\)", sum_text)
    ]
    total = float(re.search(r"= (-?[\d.e-]+)", sum_text).group(1))
    own = float(re.search(r"own output there: (-?[\d.e-]+)", sum_text).group(1))
    assert (
        len(numbers) == 4 and sum(numbers) == pytest.approx(total, abs=2e-3) and own == pytest.approx(total, abs=2e-3)
    )
    choose(browser, "#convolution .first-conv select", "mlp-mnist")
    wait(browser, lambda: "has no conv layer" in text(browser, "#convolution .first-conv .panel-error"))
    assert not found(browser, "#convolution .channel-row")


# ---------------------------------------------------------------- Training and Data


@pytest.fixture
def odd_runs(served_runs, tmp_path):
    """A RUNS_DIR with, newest first: a run whose run.json is broken, a run that has just started training (its
    record written, epoch 0, its lock held), and two finished runs."""
    from cnnlab.training.folder import LOCK
    from cnnlab.training.record import RunRecord

    runs = tmp_path / "runs"
    for name in ("mlp-mnist", "mnist-cnn-mnist"):
        shutil.copytree(served_runs / name, runs / name)
    starting = runs / "starting"
    starting.mkdir()
    record = RunRecord.load(served_runs / "mlp-mnist")
    record.history, record.best, record.test, record.epochs_done, record.status = [], None, None, 0, "running"
    record.save(starting)
    lock = open(starting / LOCK, "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    time.sleep(0.05)
    (runs / "broken").mkdir()
    (runs / "broken" / "run.json").write_text("{ not json")
    yield runs
    lock.close()


def test_a_broken_run_is_one_line_and_a_starting_run_shows_epoch_0(browser, odd_runs):
    with serving(odd_runs) as url:
        open_panel(browser, url, "monitor")
        wait(browser, lambda: len(found(browser, "#monitor table.runs tbody tr")) == 4)
        broken = found(browser, '#monitor tr[data-run="broken"]')[0]
        assert len(broken.find_elements("css selector", "td")) == 3 and "\n" not in broken.text.split("broken", 1)[1]
        assert not broken.find_element("css selector", "input").is_enabled()
        assert found(browser, '#monitor tr[data-run="starting"] .state')[0].text == "training, epoch 0"
        wait(browser, lambda: found(browser, "#monitor .run-detail h2")[0].text not in ("", "broken"))
        found(browser, '#monitor tr[data-run="starting"] td.name')[0].click()
        wait(browser, lambda: "training, epoch 0" in found(browser, "#monitor .run-detail p.note")[0].text)
        assert found(browser, "#error")[0].get_attribute("hidden") is not None


def test_a_confusion_cell_title_goes_with_its_run(browser, live_server):
    open_panel(browser, live_server, "monitor")
    first(browser, '#monitor tr[data-run="mlp-mnist"] td.name').click()
    cells = wait(browser, lambda: found(browser, '#monitor .matrix[data-run="mlp-mnist"] td.diagonal'))
    cells[0].click()
    wait(browser, lambda: text(browser, "#monitor .cell h3").startswith("true 0"))
    first(browser, '#monitor tr[data-run="mnist-cnn-mnist"] td.name').click()
    wait(browser, lambda: found(browser, '#monitor .matrix[data-run="mnist-cnn-mnist"]'))
    assert text(browser, "#monitor .cell h3") == "Click a cell to see its test images"
    assert not found(browser, "#monitor .thumbs img")
    assert "share of the row's true class" in text(browser, "#monitor .matrix .legend-bar")


def test_choosing_another_data_set_keeps_the_augmentation_settings(browser, live_server):
    open_panel(browser, live_server, "datasets")
    rows = wait(browser, lambda: [r for r in found(browser, "#datasets tr.available")] or None)
    assert len(rows) >= 2
    wait(browser, lambda: found(browser, "#datasets img.preview[src]"))
    browser.execute_script("""
        const slider = document.querySelector('#datasets [data-value=rotate]');
        slider.value = 33; slider.dispatchEvent(new Event('input'));""")
    spec = wait(
        browser,
        lambda: (lambda s: "rotate=33" in s and s)(
            browser.execute_script("return document.querySelector('#datasets input.spec').value")
        ),
    )
    other = [r for r in found(browser, "#datasets tr.available") if "chosen" not in r.get_attribute("class")][0]
    chosen = other.get_attribute("data-id")
    other.click()
    wait(
        browser,
        lambda: browser.execute_script("return document.querySelector('#datasets img.preview').dataset.of") == chosen,
    )
    assert browser.execute_script("return document.querySelector('#datasets input.spec').value") == spec
    assert browser.execute_script("return document.querySelector('#datasets [data-value=rotate]').value") == "33"


# ---------------------------------------------------------------- the pictures in docs/explorer


@contextlib.contextmanager
def chromium(width: int, height: int):
    """Debian's headless Chromium, as the `browser` fixture opens it, for taking the pictures."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshots(runs: Path, out: Path) -> None:
    """docs/explorer/<panel>.png: each panel with its introduction, a legend and a definition shown on hover."""
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    out.mkdir(parents=True, exist_ok=True)
    with serving(runs) as url, chromium(1400, 1300) as browser:

        def take(name, panel, prepare, term, within="", height=1300):
            browser.set_window_size(1400, height)
            open_panel(browser, url, panel)
            prepare()
            time.sleep(2)
            hovered = found(browser, f'#{panel} {within} dfn.term[data-term="{term}"]')[0]
            browser.execute_script(
                "arguments[0].scrollIntoView({block: arguments[1]})", hovered, "start" if within else "center"
            )
            browser.execute_script("window.scrollBy(0, -60)")
            ActionChains(browser).move_to_element(hovered).perform()
            time.sleep(0.5)
            browser.save_screenshot(str(out / f"{name}.png"))
            picture = Image.open(out / f"{name}.png").convert("RGB")
            picture.resize((1200, round(picture.height * 1200 / picture.width)), Image.LANCZOS).quantize(256).save(
                out / f"{name}.png", optimize=True
            )

        def explore():
            choose(browser, "#explore select.runs", "lesson-cnn-cifar10")
            wait(browser, lambda: found(browser, "#explore button.bar"))
            Select(found(browser, "#explore select.method")[0]).select_by_value("occlusion")
            found(browser, "#explore button.bar.top")[0].click()
            wait(browser, lambda: found(browser, "#explore .evidence .legend-bar"))

        def kernels():
            wait(browser, lambda: found(browser, "#kernels .figures img[alt=filtered][src]"))
            picture = found(browser, "#kernels figure.drop img")[0]
            ActionChains(browser).move_to_element_with_offset(picture, -60, 20).perform()
            wait(browser, lambda: readout(browser))

        def convolution():
            wait(browser, lambda: len(found(browser, "#convolution .channel-row")) >= 1)

        def monitor():
            wait(browser, lambda: found(browser, "#monitor .matrix td"))

        def datasets():
            wait(browser, lambda: found(browser, "#datasets img.preview[src]"))

        take("explore", "explore", explore, "softmax")
        take("kernels", "kernels", kernels, "fourier")
        take("convolution", "convolution", convolution, "stride")
        take("convolution-channels", "convolution", convolution, "bias", within=".first-conv")
        take("monitor", "monitor", monitor, "confusion-matrix", height=2000)  # down to the matrix's legend
        take("datasets", "datasets", datasets, "augmentation")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    screenshots(Path(sys.argv[1]), Path(__file__).resolve().parents[1] / "docs" / "explorer")
