"""The "Look inside" panel: drawings made MNIST-style, one forward pass giving probabilities and every layer, heat
maps from cnnlab.inspect, answers equal to `cnnlab predict` and `cnnlab explain`, bad input refused in one line
while the server keeps serving, and the page driven in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import shutil
import socket
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pixels
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from cnnlab.cli import main
from cnnlab.images import digit_like_mnist
from cnnlab.predict import Predictor
from cnnlab.serve import create_app

pytestmark = pytest.mark.usefixtures("one_thread")
MNIST_RUNS = ("mlp-mnist", "mnist-cnn-mnist")


@pytest.fixture(scope="module")
def client(served_runs):
    return TestClient(create_app(served_runs), base_url="http://127.0.0.1")


def data_url(image: Image.Image, format: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return f"data:image/{format.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def drawn_seven(size=280, offset=(0, 0), scale=1.0, ink="white", paper="black") -> Image.Image:
    """A "7" drawn with a thick pen, as on the page's canvas; offset and scale move and resize it."""
    image = Image.new("RGB", (size, size), paper)
    points = [(80, 70), (200, 70), (120, 230)]
    moved = [(offset[0] + 140 + (x - 140) * scale, offset[1] + 140 + (y - 140) * scale) for x, y in points]
    ImageDraw.Draw(image).line(moved, fill=ink, width=max(2, round(22 * scale)), joint="curve")
    return image


def levels(payload: dict) -> np.ndarray:
    """A channel_maps payload back to uint8 [C, h, w]."""
    return np.frombuffer(base64.b64decode(payload["data"]), np.uint8).reshape(payload["shape"])


# --- drawings, the MNIST way ------------------------------------------------------------------------------------


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    mass = image.astype(np.float64)
    rows, cols = np.indices(image.shape)
    return (rows * mass).sum() / mass.sum(), (cols * mass).sum() / mass.sum()


@pytest.mark.parametrize("offset, scale", [((0, 0), 1.0), ((-70, 50), 0.4), ((60, -40), 0.7)])
def test_a_drawn_digit_is_cropped_scaled_into_20x20_and_centred_by_mass(offset, scale):
    digit = digit_like_mnist(drawn_seven(offset=offset, scale=scale))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.nonzero(digit)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20  # the longer side fills the 20x20 box
    centre = centre_of_mass(digit)
    assert abs(centre[0] - 13.5) <= 0.5 and abs(centre[1] - 13.5) <= 0.5
    reference = digit_like_mnist(drawn_seven())  # where and how big it was drawn is gone
    assert np.abs(digit.astype(int) - reference).mean() < 12


def test_dark_on_light_arrays_and_an_empty_canvas_are_taken_too():
    light_on_dark = digit_like_mnist(drawn_seven())
    dark_on_light = digit_like_mnist(np.asarray(drawn_seven(ink="black", paper="white")))
    assert np.abs(dark_on_light.astype(int) - light_on_dark).max() <= 1
    assert not digit_like_mnist(np.zeros((100, 100), np.uint8)).any()


# --- the endpoints ----------------------------------------------------------------------------------------------


def test_the_runs_are_listed_with_what_the_page_shows(client, served_runs):
    runs = {run["name"]: run for run in client.get("/api/explore/runs").json()}
    assert set(runs) == {"mlp-mnist", "mnist-cnn-mnist", "lesson-cnn-cifar10"}
    for name, run in runs.items():
        record = Predictor.from_run(served_runs / name).record
        assert run["model"] == record.model.name and run["dataset"] == record.data.name
        assert run["test_accuracy"] == pytest.approx(record.test.accuracy)
        assert run["drawable"] == (name in MNIST_RUNS)
    assert runs["lesson-cnn-cifar10"]["input_shape"] == [3, 32, 32] and runs["mlp-mnist"]["classes"][7] == "7"


def test_one_forward_pass_gives_the_probabilities_and_every_layer(client):
    store = client.app.state.store
    passes = []
    with store.predictor("lesson-cnn-cifar10") as predictor:
        handle = predictor.model.register_forward_pre_hook(lambda *_: passes.append(1))
    try:
        answer = client.post(
            "/api/explore/look", json={"run": "lesson-cnn-cifar10", "image": data_url(drawn_seven()), "drawing": True}
        ).json()
    finally:
        handle.remove()
    assert len(passes) == 1
    scores = np.array(answer["scores"])
    assert scores.sum() == pytest.approx(1, abs=1e-5) and answer["predicted"] == scores.argmax()
    layers = {layer["name"]: layer for layer in answer["layers"]}
    assert list(layers) == ["conv1", "pool", "conv2", "pool (use 2)", "conv3", "pool (use 3)", "fc1", "fc2"]
    assert [layers[n]["shape"] for n in ("pool", "pool (use 2)", "pool (use 3)")] == [
        [16, 16, 16],
        [32, 8, 8],
        [64, 4, 4],
    ]
    assert levels(layers["conv3"]["maps"]).shape == (32, 8, 8) and layers["conv3"]["shown"] == 32  # capped
    assert levels(layers["conv1"]["maps"]).std() > 0
    # the last layer's outputs are the logits of that same pass: their softmax is the probabilities
    logits = torch.tensor(layers["fc2"]["values"])
    assert np.allclose(logits.softmax(0).numpy(), scores, atol=1e-3)
    assert pixels(answer["input"]).shape == (32, 32, 3)
    assert any("taken as a picture" in note for note in answer["notes"])  # no MNIST-style for a colour model


def test_a_drawing_is_shown_as_the_mnist_model_sees_it(client):
    answer = client.post(
        "/api/explore/look",
        json={"run": "mnist-cnn-mnist", "image": data_url(drawn_seven()), "drawing": True, "max_channels": 4},
    ).json()
    seen = pixels(answer["input"])
    assert np.array_equal(seen, digit_like_mnist(drawn_seven()))
    assert "MNIST-style" in answer["notes"][0] and answer["methods"] == ["gradcam", "saliency", "occlusion"]
    first = answer["layers"][0]
    assert first["kind"] == "Conv2d" and first["shape"] == [32, 14, 14] and levels(first["maps"]).shape == (4, 14, 14)
    mlp = client.post(
        "/api/explore/look", json={"run": "mlp-mnist", "image": data_url(drawn_seven()), "drawing": True}
    ).json()
    assert [layer["kind"] for layer in mlp["layers"]] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert len(mlp["layers"][0]["values"]) == 512 and mlp["methods"] == ["saliency", "occlusion"]


def test_big_layers_are_capped_and_averaged_down_and_say_so():
    from torch import nn

    from cnnlab.serve.explore import MAX_SIDE, layer_payloads

    wide = torch.rand(1, 64, 112, 80)
    (row,) = layer_payloads([("layer1", nn.Conv2d(3, 64, 3), wide)], max_channels=8)
    assert row["shape"] == [64, 112, 80] and row["shown"] == 8 and row["scaled"]
    maps = levels(row["maps"])
    assert maps.shape == (8, MAX_SIDE, 40)  # aspect kept
    averaged = torch.nn.functional.adaptive_avg_pool2d(wide[0, :1], (MAX_SIDE, 40))
    assert np.corrcoef(maps[0].ravel(), averaged.ravel())[0, 1] > 0.99


def test_each_attribution_is_an_overlay_on_the_input(client):
    image = data_url(drawn_seven())
    for method in ("gradcam", "saliency", "occlusion"):
        answer = client.post(
            "/api/explore/attribution",
            json={"run": "mnist-cnn-mnist", "image": image, "drawing": True, "target": 7, "method": method},
        )
        assert answer.status_code == 200, answer.text
        answer = answer.json()
        overlay, heat = pixels(answer["overlay"]), levels(answer["heat"])[0]
        assert overlay.shape == (28, 28, 3) and heat.shape == (28, 28) and answer["class"] == "7"
        seen = digit_like_mnist(drawn_seven())
        # where the map is 0 the picture shows through unchanged; elsewhere the colours cover it
        zero = (heat == 0) if answer["range"][0] == 0 else np.zeros_like(heat, bool)
        assert np.abs(overlay[zero].astype(int) - seen[zero][:, None]).max(initial=0) <= 1
        assert not np.array_equal(overlay, np.stack([seen] * 3, -1))
    refused = client.post(
        "/api/explore/attribution", json={"run": "mlp-mnist", "image": image, "target": 1, "method": "gradcam"}
    )
    assert refused.status_code == 400 and "convolutional layer" in refused.json()["error"]
    far = client.post(
        "/api/explore/attribution", json={"run": "mlp-mnist", "image": image, "target": 10, "method": "saliency"}
    )
    assert far.status_code == 400 and "out of range" in far.json()["error"]


def test_a_test_image_comes_with_its_true_label(client, served_runs):
    answer = client.get("/api/explore/random", params={"run": "lesson-cnn-cifar10", "index": 7}).json()
    test = Predictor.from_run(served_runs / "lesson-cnn-cifar10").split("test")
    assert np.array_equal(pixels(answer["image"]), test.images[7].numpy().transpose(1, 2, 0))
    assert answer["label"] == int(test.labels[7]) and answer["label_name"] in (
        "airplane",
        "cat",
        "dog",
        "bird",
        "automobile",
        "deer",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert 0 <= client.get("/api/explore/random", params={"run": "mlp-mnist"}).json()["index"] < 100
    beyond = client.get("/api/explore/random", params={"run": "mlp-mnist", "index": 100})
    assert beyond.status_code == 400 and "0 to 99" in beyond.json()["error"]


# --- the page's answers equal the command line's ----------------------------------------------------------------


def test_the_page_agrees_with_cnnlab_predict_and_explain(client, served_runs, tmp_path, capsys, monkeypatch):
    y, x = np.mgrid[0:48, 0:64]
    photo = tmp_path / "photo.png"
    Image.fromarray(np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)).save(photo)
    run = served_runs / "lesson-cnn-cifar10"
    computed = []
    top_k = Predictor.top_k
    monkeypatch.setattr(Predictor, "top_k", lambda self, *a, **k: computed.append(top_k(self, *a, **k)) or computed[-1])
    assert main(["predict", str(run), str(photo), "--top-k", "10"]) == 0
    printed = capsys.readouterr().out
    answer = client.post("/api/explore/look", json={"run": run.name, "image": data_url(Image.open(photo))}).json()
    for name, value in computed[0][0]:
        assert answer["scores"][answer["classes"].index(name)] == pytest.approx(value, abs=1e-5)
        assert f"{name:>20s}  {value:7.2%}" in printed
    assert "resized 64x48 to 32x32" in printed and any("resized 64x48 to 32x32" in n for n in answer["notes"])

    saved = tmp_path / "gradcam.npy"
    assert (
        main(
            [
                "explain",
                str(run),
                str(photo),
                "--method",
                "gradcam",
                "--target",
                "3",
                "--save-array",
                str(saved),
                "--out",
                str(tmp_path / "gradcam.png"),
            ]
        )
        == 0
    )
    cli_map = np.load(saved)[0]
    heat = client.post(
        "/api/explore/attribution",
        json={"run": run.name, "image": data_url(Image.open(photo)), "target": 3, "method": "gradcam"},
    ).json()
    low, high = heat["range"]
    page_map = low + levels(heat["heat"])[0] / 255 * (high - low)
    assert np.allclose(page_map, cli_map, atol=(high - low) / 255 + 1e-6)


# --- bad input: one clear line, and the server goes on ----------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header says width x height: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.parametrize(
    "image, says",
    [
        ("data:text/plain;base64," + base64.b64encode(b"hello, not a picture").decode(), "not an image"),
        ("data:image/png;base64,", "empty"),
        ("hello", "not a data URL"),
        ("data:image/png;base64,###", "not valid base64"),
        ("data:image/png;base64," + base64.b64encode(png_claiming(20000, 20000)).decode(), "Mpx"),
    ],
)
def test_bad_images_are_refused_in_one_line(client, image, says):
    start, before = time.perf_counter(), rss_mb()
    for path in ("look", "attribution"):
        answer = client.post(
            f"/api/explore/{path}", json={"run": "mlp-mnist", "image": image, "target": 0, "method": "saliency"}
        )
        assert answer.status_code == 400 and says in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert time.perf_counter() - start < 2 and rss_mb() - before < 50  # refused before decoding
    still = client.post("/api/explore/look", json={"run": "mlp-mnist", "image": data_url(drawn_seven())})
    assert still.status_code == 200


@pytest.mark.parametrize("name", ["../mlp-mnist", "..", "/etc", "/tmp", "mlp-mnist/../mlp-mnist", "%2e%2e", ""])
def test_run_names_are_names_not_paths(client, name):
    look = client.post("/api/explore/look", json={"run": name, "image": data_url(drawn_seven())})
    test = client.get("/api/explore/random", params={"run": name})
    assert look.status_code == test.status_code == 404 and "no run named" in look.json()["error"]


def test_nothing_outside_the_page_is_served(live_server):
    port = int(live_server.rstrip("/").rsplit(":", 1)[1])
    for path in (
        "/..%2f..%2f..%2f..%2fpyproject.toml",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/../../../../../../etc/passwd",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsrc%2fcnnlab%2fserve%2fstore.py",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
        status = int(reply.split()[1])
        assert status in (400, 404), (path, reply[:200])
        assert b"importlinter" not in reply and b"root:" not in reply and b"RunStore" not in reply


@pytest.fixture
def own_runs(served_runs, tmp_path):
    """A RUNS_DIR of its own (copies of two runs) and a client over it: these tests break runs."""
    runs = tmp_path / "runs"
    for name in MNIST_RUNS:
        shutil.copytree(served_runs / name, runs / name)
    return runs, TestClient(create_app(runs), base_url="http://127.0.0.1")


def test_a_run_deleted_while_serving_is_a_404_and_the_rest_still_work(own_runs):
    runs, client = own_runs
    look = {"run": "mlp-mnist", "image": data_url(drawn_seven()), "drawing": True}
    assert client.post("/api/explore/look", json=look).status_code == 200
    assert client.get("/api/explore/random", params={"run": "mlp-mnist"}).status_code == 200
    shutil.rmtree(runs / "mlp-mnist")
    for answer in (
        client.post("/api/explore/look", json=look),
        client.get("/api/explore/random", params={"run": "mlp-mnist"}),
        client.post("/api/explore/attribution", json={**look, "target": 1, "method": "saliency"}),
    ):
        assert answer.status_code == 404 and "mlp-mnist" in answer.json()["error"]
    assert [run["name"] for run in client.get("/api/explore/runs").json()] == ["mnist-cnn-mnist"]
    assert client.post("/api/explore/look", json={**look, "run": "mnist-cnn-mnist"}).status_code == 200


def test_a_corrupted_checkpoint_or_record_is_a_clear_4xx(own_runs):
    runs, client = own_runs
    look = {"run": "mnist-cnn-mnist", "image": data_url(drawn_seven()), "drawing": True}
    assert client.post("/api/explore/look", json=look).status_code == 200  # opened and kept by the store
    weights = runs / "mnist-cnn-mnist" / "best.safetensors"
    weights.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    answer = client.post("/api/explore/look", json=look)
    assert answer.status_code == 400 and "not a readable safetensors checkpoint" in answer.json()["error"]
    (runs / "mlp-mnist" / "run.json").write_text("{ not json")
    listed = {run["name"]: run for run in client.get("/api/explore/runs").json()}
    assert listed["mlp-mnist"]["problem"] and listed["mnist-cnn-mnist"]["model"] == "mnist-cnn"
    broken = client.post("/api/explore/look", json={**look, "run": "mlp-mnist"})
    assert broken.status_code == 400 and "run.json" in broken.json()["error"]


def test_100_concurrent_requests_are_all_answered_within_seconds(live_server):
    import http.client
    import json

    port = int(live_server.rstrip("/").rsplit(":", 1)[1])
    images = [data_url(drawn_seven(offset=(k % 7 * 10 - 30, 0), scale=0.5 + k % 5 / 10)) for k in range(10)]
    runs = ["mlp-mnist", "mnist-cnn-mnist", "lesson-cnn-cifar10"]
    bodies = [json.dumps({"run": runs[k % 3], "image": images[k % 10], "drawing": True}) for k in range(100)]
    before = rss_mb()

    def ask(k: int) -> tuple[int, float]:
        # a bare connection per request: the client's own cost stays out of the time measured
        start = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/api/explore/look", bodies[k], {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return answer.status, time.perf_counter() - start

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(ask, range(100)))
    assert [status for status, _ in answers] == [200] * 100
    assert max(seconds for _, seconds in answers) < 5
    assert rss_mb() - before < 300, "memory grew by more than 300 MB for 100 small requests"


# --- the page in a real browser ---------------------------------------------------------------------------------

COUNT_LOOKS = """
window.looks = { sent: 0, flying: 0, most: 0 };
const fetch0 = window.fetch;
window.fetch = async (...args) => {
  if (!String(args[0]).includes("explore/look")) return fetch0(...args);
  looks.sent++; looks.flying++; looks.most = Math.max(looks.most, looks.flying);
  try { return await fetch0(...args); } finally { looks.flying--; }
};"""


def open_panel(browser, live_server, run: str):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(live_server + "#explore")
    browser.refresh()  # the hash alone would not reload a page already open
    wait = WebDriverWait(browser, 20)
    wait.until(lambda b: b.find_elements("css selector", "#explore select.runs option"))
    Select(browser.find_element("css selector", "#explore select.runs")).select_by_value(run)
    return wait


def click_channel(browser, sheet, channel: int) -> None:
    """Click one channel's thumbnail on a layer's sheet (a grid of them on one canvas), where a person would."""
    from selenium.webdriver.common.action_chains import ActionChains

    columns, width, height = (
        int(sheet.get_attribute(f"data-{name}")) for name in ("columns", "cell-width", "cell-height")
    )
    x = (channel % columns + 0.5) * width - sheet.size["width"] / 2  # offsets are from the centre
    y = (channel // columns + 0.5) * height - sheet.size["height"] / 2
    ActionChains(browser).move_to_element_with_offset(sheet, round(x), round(y)).click().perform()


def predicted_text(browser) -> str:
    # read in one step: while drawing, the page may replace the element between a find and a read
    return browser.execute_script("return document.querySelector('#explore .predicted b.class')?.textContent ?? ''")


def test_drawing_a_digit_shows_the_prediction_while_drawing(browser, live_server, tmp_path):
    import httpx
    from selenium.webdriver.common.action_chains import ActionChains

    wait = open_panel(browser, live_server, "mnist-cnn-mnist")
    canvas = browser.find_element("css selector", "#explore canvas.drawing")
    wait.until(lambda b: canvas.is_displayed())
    browser.execute_script(COUNT_LOOKS)
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, -40, -70).click_and_hold()
    for _ in range(12):
        stroke.move_by_offset(8, 0).pause(0.03)
    stroke.perform()
    wait.until(lambda b: predicted_text(b))  # an answer while the button is still held
    ActionChains(browser).move_by_offset(-40, 130).pause(0.05).move_by_offset(-20, 20).release().perform()
    drawn = browser.execute_script("return document.querySelector('#explore canvas.drawing').toDataURL()")
    answer = httpx.post(
        live_server + "api/explore/look", json={"run": "mnist-cnn-mnist", "image": drawn, "drawing": True}
    ).json()
    seen = browser.find_element("css selector", "#explore img.seen")
    wait.until(lambda b: seen.get_attribute("src") == answer["input"])  # the page shows the finished drawing
    assert predicted_text(browser) == answer["classes"][answer["predicted"]]
    assert len(browser.find_elements("css selector", "#explore .layer")) == len(answer["layers"]) == 12
    looks = browser.execute_script("return looks")
    assert looks["most"] == 1 and looks["sent"] >= 2  # updates while drawing, never two at once

    browser.find_elements("css selector", "#explore button.bar")[3].click()
    wait.until(lambda b: "3" == b.find_element("css selector", "#explore .evidence b.target").text)
    click_channel(browser, browser.find_element("css selector", "#explore canvas.sheet"), 21)
    assert "channel 21 of 32" in browser.find_element("css selector", "#explore .zoom-box").text
    browser.save_screenshot(str(tmp_path / "drawn.png"))
    assert Image.open(tmp_path / "drawn.png").size[0] >= 1000

    browser.find_element("xpath", "//section[@id='explore']//button[text()='Clear']").click()
    assert predicted_text(browser) == "" and not browser.find_elements("css selector", "#explore .layer")


def test_an_uploaded_photo_gets_bars_and_an_overlay(browser, live_server, tmp_path):
    y, x = np.mgrid[0:90, 0:120]
    photo = tmp_path / "photo.png"
    Image.fromarray(np.stack([x * 2, y * 2, 255 - x], -1).astype(np.uint8)).save(photo)
    wait = open_panel(browser, live_server, "lesson-cnn-cifar10")
    wait.until(lambda b: "true label" in b.find_element("css selector", "#explore .truth").text)  # starts with one
    browser.find_element("css selector", "#explore input.file").send_keys(str(photo))
    wait.until(lambda b: "resized 120x90 to 32x32" in b.find_element("css selector", "#explore ul.notes").text)
    bars = browser.find_elements("css selector", "#explore button.bar")
    assert [bar.find_element("css selector", ".name").text for bar in bars][:2] == ["airplane", "automobile"]
    assert len(browser.find_elements("css selector", "#explore button.bar.top")) == 1
    bars[5].click()
    overlay = browser.find_element("css selector", "#explore img.overlay")
    wait.until(
        lambda b: overlay.get_attribute("src") and b.execute_script("return arguments[0].naturalWidth", overlay) == 32
    )
    first = overlay.get_attribute("src")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("css selector", "#explore select.method")).select_by_value("occlusion")
    wait.until(lambda b: overlay.get_attribute("src") != first)
    assert "dog" in browser.find_element("css selector", "#explore .evidence .caption").text

    dropped = tmp_path / "dropped.png"
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(dropped)
    browser.execute_script(
        DROP, browser.find_element("css selector", "#explore .stage"), base64.b64encode(dropped.read_bytes()).decode()
    )
    wait.until(lambda b: "resized 70x50 to 32x32" in b.find_element("css selector", "#explore ul.notes").text)
    browser.find_element("xpath", "//section[@id='explore']//button[text()='Webcam']").click()  # Chromium's fake
    wait.until(lambda b: "resized 640x480" in b.find_element("css selector", "#explore ul.notes").text)
    assert browser.find_element("id", "error").get_attribute("hidden") is not None


# A file dropped from the desktop: what the browser hands the page's drop handler (WebDriver cannot drag files).
DROP = """
const [stage, base64] = arguments;
const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
stage.dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));"""
