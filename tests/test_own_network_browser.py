"""The lesson's own MLP (tests/lesson_nets.py, not a registry model) in the explorer that `run.explore()` serves
from this process: drawn on in a real headless Chromium, the page shows its class."""

from __future__ import annotations

import httpx
import pytest
import torch
from conftest import make_mnist, pixels
from lesson_nets import Net
from test_serve_explore import open_panel, predicted_text

import cnnlab

pytestmark = pytest.mark.usefixtures("one_thread")


def test_drawing_on_ones_own_mlp_shows_its_class(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    make_mnist(tmp_path / "data", n_train=200, n_test=40)
    torch.manual_seed(0)
    run = cnnlab.train(
        Net(),
        "mnist",
        data_root=tmp_path / "data",
        folder=tmp_path / "runs" / "my-mlp",
        epochs=1,
        batch_size=32,
        precision="fp32",
        progress=False,
        log=lambda line: None,
    )
    explorer = run.explore()
    try:
        base = f"http://127.0.0.1:{explorer.port}/"
        wait = open_panel(browser, base, "my-mlp")
        wait.until(
            lambda b: (
                "your own network Net, from this notebook's code"
                in b.find_element("css selector", "#explore .info").text
            )
        )
        canvas = browser.find_element("css selector", "#explore canvas.drawing")
        wait.until(lambda b: canvas.is_displayed())
        stroke = ActionChains(browser).move_to_element_with_offset(canvas, -40, -70).click_and_hold()
        for _ in range(12):
            stroke.move_by_offset(8, 0).pause(0.03)
        stroke.move_by_offset(-40, 130).pause(0.05).move_by_offset(-20, 20).release().perform()
        drawn = browser.execute_script("return document.querySelector('#explore canvas.drawing').toDataURL()")
        answer = httpx.post(base + "api/explore/look", json={"run": "my-mlp", "image": drawn, "drawing": True}).json()
        seen = browser.find_element("css selector", "#explore img.seen")
        wait.until(lambda b: seen.get_attribute("src") == answer["input"])
        wait.until(lambda b: predicted_text(b) == answer["classes"][answer["predicted"]])
        # the page's answer is the class's own: the same drawing through the reloaded network
        probabilities = cnnlab.load(run.folder, model=Net).probabilities(
            torch.tensor(pixels(answer["input"])).reshape(1, 1, 28, 28)
        )
        assert int(probabilities.argmax()) == answer["predicted"]
        assert [layer["name"] for layer in answer["layers"]][:2] == ["fc1", "fc2"]
    finally:
        explorer.stop()
