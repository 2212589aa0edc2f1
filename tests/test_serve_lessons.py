"""The explorer's lessons panels: the kernel playground and the convolution arithmetic, as endpoints and in a browser.
(Their pictures in docs/explorer: `python tests/test_explorer_pages.py RUNS_DIR`.)"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from conftest import pixels, serving
from fastapi.testclient import TestClient
from PIL import Image

from cnnlab.filters import (
    KERNELS,
    LESSON_FILTERS,
    apply_kernel,
    blur,
    conv_demo,
    display_mode,
    explain_sizes,
    load_picture,
    to_uint8,
)
from cnnlab.serve import create_app
from cnnlab.serve.lessons import Pictures, read_kernel
from cnnlab.serve.payloads import png_data_url
from cnnlab.serve.store import NotFound


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # the lessons need no trained run
    return TestClient(create_app(tmp_path_factory.mktemp("no-runs")), base_url="http://127.0.0.1")


def a_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with an edge: something for the filters to find."""
    y, x = np.mgrid[:height, :width]
    rng = np.random.default_rng(seed)
    picture = np.stack([x * 255 // width, y * 255 // height, (x > width // 2) * 200], axis=-1)
    return (picture + rng.integers(0, 30, picture.shape)).clip(0, 255).astype(np.uint8)


# --- kernel playground: endpoints ---------------------------------------------------------------------------------


def test_the_library_lists_every_named_kernel_and_its_grid_reads_back_as_the_same_weights(client):
    library = client.get("/api/kernels").json()
    assert [k["name"] for k in library["kernels"]] == list(KERNELS)
    for kernel in library["kernels"]:
        _, matrix = read_kernel(kernel["cells"])  # what the grid shows is what the kernel is
        np.testing.assert_allclose(matrix, KERNELS[kernel["name"]].matrix)
    box = next(k for k in library["kernels"] if k["name"] == "box")
    assert box["cells"][0] == ["1/9"] * 3
    assert "sample:city" in [s["id"] for s in library["samples"]]


@pytest.mark.parametrize(
    "request_body",
    [
        {"kernel": "sobel-x"},
        {"kernel": "box", "display": "signed", "border": "constant", "color": True},
        {"kernel": [["0", "-1", "0"], ["-1", "5", "-1"], ["0", "-1", "0.5"]], "blur_first": True, "border": "wrap"},
        {"kernel": [[1, 2, 1], ["2/16", "4/16", "2/16"], [-1, -2, -1]], "display": "clip"},
    ],
    ids=["named", "colour-signed-constant", "custom-blur-first-wrap", "fractions-clip"],
)
def test_the_filtered_picture_is_apply_kernels_result_shown_as_the_cli_writes_it(client, request_body):
    answer = client.post("/api/kernels/filter", json={"image": "sample:shapes", **request_body})
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    _, kernel = read_kernel(request_body["kernel"])
    source = load_picture("sample:shapes", color=request_body.get("color", False))
    border = request_body.get("border", "reflect-101")
    if request_body.get("blur_first"):
        source = blur(source, border)
    result = apply_kernel(source, kernel, border)
    mode = display_mode(kernel, request_body.get("display", "auto"))
    np.testing.assert_array_equal(pixels(answer["filtered"]), to_uint8(result, mode))
    assert answer["display"] == mode and answer["low"] == pytest.approx(result.min(), rel=1e-5)
    assert answer["gain"] == pytest.approx(kernel.sum(), abs=1e-9)  # the response's centre: flat areas


def test_an_uploaded_picture_is_kept_by_its_content_and_filtered_by_its_id(client):
    import cv2

    photo = a_photo(300, 200)
    first = client.post("/api/pictures", json={"image": png_data_url(photo)}).json()
    again = client.post("/api/pictures", json={"image": png_data_url(photo)}).json()
    assert first["id"] == again["id"] and (first["width"], first["height"]) == (300, 200)
    answer = client.post("/api/kernels/filter", json={"image": first["id"], "kernel": "laplacian"}).json()
    expected = to_uint8(apply_kernel(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), KERNELS["laplacian"].matrix), "abs")
    np.testing.assert_array_equal(pixels(answer["filtered"]), expected)

    big = client.post("/api/pictures", json={"image": png_data_url(a_photo(1500, 600))}).json()
    assert (big["width"], big["height"], big["original"]) == (1024, 410, [1500, 600])  # shrunk, aspect kept


@pytest.mark.parametrize("image", ["upload:0123456789abcdef", "../../etc/passwd", "/etc/passwd"])
def test_a_picture_the_server_does_not_hold_is_a_404_never_a_file(client, image):
    answer = client.post("/api/kernels/filter", json={"image": image, "kernel": "box"})
    assert answer.status_code == 404 and "upload it again" in answer.json()["error"]


def test_the_server_keeps_only_the_most_recently_used_uploads():
    pictures = Pictures(keep=2)
    first, second, third = (pictures.add(png_data_url(a_photo(20, 10, seed)))[0] for seed in range(3))
    with pytest.raises(NotFound):
        pictures.get(first)
    pictures.get(second)  # now the most recent: the next upload drops `third`
    pictures.add(png_data_url(a_photo(20, 10, 9)))
    assert pictures.get(second).shape == (10, 20, 3)
    with pytest.raises(NotFound):
        pictures.get(third)


@pytest.mark.parametrize(
    "kernel, said",
    [
        ('[["a", 0, 0], [0, 1, 0], [0, 0, 0]]', "kernel row 1, column 1: 'a' is not a number"),
        ('[[0, 0, 0], [0, 1, "1/0"], [0, 0, 0]]', "row 2, column 3: '1/0' is not a number"),
        ("[[0, 0, 0], [0, NaN, 0], [0, 0, 0]]", "row 2, column 2 is nan"),
        ("[[0, 0, 0], [0, 1, 0], [0, 0, Infinity]]", "row 3, column 3 is inf"),
        ("[[0, 0, 0], [0, null, 0], [0, 0, 0]]", "row 2, column 2 is empty"),
        ("[[1, 2, 3], [4, 5], [6, 7, 8]]", "kernel rows have 3, 2, 3 numbers"),
        ("[[1, 1], [1, 1]]", "kernel is 2x2, but filtering needs odd sizes"),
        ("[[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]", "kernel is 4x4"),
        (json.dumps([[1] * 17] * 17), "kernel is 17x17; the playground takes kernels up to 15x15"),
        ("[]", "kernel is empty"),
        ('"sobel-z"', "unknown kernel 'sobel-z'"),
        ('"/etc/passwd"', "unknown kernel '/etc/passwd'"),  # a name, never read as a file
    ],
)
def test_a_bad_kernel_is_a_one_line_error_naming_the_value(client, kernel, said):
    body = f'{{"image": "sample:city", "kernel": {kernel}}}'
    answer = client.post("/api/kernels/filter", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert said in error and "\n" not in error


def test_the_spectrum_finds_the_stripes_frequency(client):
    answer = client.get("/api/kernels/spectrum", params={"image": "sample:stripes"}).json()
    assert answer["strongest"] == [16, 0]  # 256 pixels / a period of 16 = 16 cycles across
    np.testing.assert_array_equal(pixels(answer["picture"]), load_picture("sample:stripes"))
    assert pixels(answer["spectrum"]).shape == (256, 256, 3)


# --- convolution arithmetic: endpoints ----------------------------------------------------------------------------


def sliding_window(numbers, weights, stride, padding, dilation, output):
    """The multiply-adds the page writes out: window (r, c) starts at (r*stride, c*stride) of the padded input."""
    padded = np.pad(np.array(numbers), padding)
    span = dilation * (len(weights) - 1) + 1
    return [
        [
            float(
                (
                    padded[r * stride : r * stride + span : dilation, c * stride : c * stride + span : dilation]
                    * np.array(weights)
                ).sum()
            )
            for c in range(output)
        ]
        for r in range(output)
    ]


def test_the_output_size_and_numbers_agree_with_pytorch_and_the_pages_window(client):
    import torch

    for size, kernel, stride, padding, dilation in itertools.product((1, 4, 7), (1, 2, 3), (1, 2, 3), (0, 2), (1, 2)):
        query = dict(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation, seed=size)
        plan = client.get("/api/convolution/sizes", params=query).json()
        conv = torch.nn.Conv2d(1, 1, kernel, stride, padding, dilation, bias=False)
        try:
            shape = conv(torch.zeros(1, 1, size, size)).shape[-1]
        except RuntimeError:  # pytorch: the kernel does not fit
            shape = 0
        assert (plan["output"], plan["fits"]) == (shape, shape > 0), query
        assert len(plan["result"]) == shape
        if shape:
            window = sliding_window(plan["input"], plan["weights"], stride, padding, dilation, shape)
            assert plan["result"] == window, query


def test_a_combination_that_does_not_fit_is_explained_and_the_advice_works(client):
    plan = client.get("/api/convolution/sizes", params=dict(size=3, kernel=5)).json()
    assert not plan["fits"] and plan["result"] == []
    (why,) = plan["explanation"]
    assert "larger than the padded input" in why and "padding of at least 1" in why
    assert client.get("/api/convolution/sizes", params=dict(size=3, kernel=5, padding=1)).json()["fits"]

    uneven = client.get("/api/convolution/sizes", params=dict(size=8, kernel=3, stride=2)).json()
    assert any("1 more row and column" in line and "dropped" in line for line in uneven["explanation"])
    even = client.get("/api/convolution/sizes", params=dict(size=7, kernel=3, stride=2)).json()
    assert not any("dropped" in line for line in even["explanation"])

    dilated = client.get("/api/convolution/sizes", params=dict(size=7, kernel=3, dilation=2)).json()
    assert dilated["formula"][0] == "dilated kernel: F = d*(k - 1) + 1 = 2*(3 - 1) + 1 = 5"
    assert dilated["formula"][1:] == explain_sizes((7, 7), (5, 5), 1, 0).splitlines() and dilated["output"] == 3


@pytest.mark.parametrize(
    "query, said",
    [
        (dict(size=0), "size 0: must be a whole number, from 1 to 16"),
        (dict(size=17), "size 17"),
        (dict(stride=0), "stride 0"),
        (dict(padding=-1), "padding -1"),
        (dict(dilation=5), "dilation 5"),
    ],
)
def test_sizes_out_of_range_are_one_line_errors(client, query, said):
    answer = client.get("/api/convolution/sizes", params=query)
    assert answer.status_code == 400 and said in answer.json()["error"]


def test_the_conv_layer_shows_conv_demos_maps(client):
    answer = client.get("/api/convolution/layer", params=dict(image="sample:shapes", stride=2, padding=1)).json()
    result = conv_demo(load_picture("sample:shapes"), LESSON_FILTERS, 2, 1)
    assert answer["explanation"] == explain_sizes((256, 256), (4, 4), 2, 1).splitlines()
    assert answer["filters"] == LESSON_FILTERS.tolist()
    for stage, (key, mode) in zip(answer["stages"], [("conv", "signed"), ("relu", "abs"), ("pooled", "abs")]):
        assert len(stage["maps"]) == 4
        for picture, expected in zip(stage["maps"], to_uint8(result[key], mode)):
            np.testing.assert_array_equal(pixels(picture), expected)
    assert (answer["stages"][2]["width"], answer["stages"][2]["height"]) == (64, 64)

    tiny = client.post("/api/pictures", json={"image": png_data_url(a_photo(4, 4))}).json()["id"]
    refused = client.get("/api/convolution/layer", params=dict(image=tiny))
    assert refused.status_code == 400 and "too small for 2x2 pooling" in refused.json()["error"]
    refused = client.get("/api/convolution/layer", params=dict(stride=0))
    assert refused.status_code == 400 and "stride 0" in refused.json()["error"]


# --- in a browser -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lessons_server(tmp_path_factory):
    """The explorer over an empty RUNS_DIR (the lessons need no run, so no waiting for served_runs' training)."""
    with serving(tmp_path_factory.mktemp("no-runs")) as url:
        yield url


def open_panel(browser, lessons_server, panel):
    browser.get("about:blank")  # a fresh page: the hash alone would not reload it
    browser.get(f"{lessons_server}#{panel}")


def wait(browser, condition, seconds=15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds).until(lambda _: condition())


def retype(box, text):
    """Select what the box holds and type over it, as a person does."""
    from selenium.webdriver.common.keys import Keys

    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text)


def test_editing_a_kernel_number_redraws_the_filtered_picture(browser, lessons_server):
    import httpx
    from selenium.webdriver.support.ui import Select

    open_panel(browser, lessons_server, "kernels")
    filtered = lambda: browser.find_element("css selector", "#kernels img[alt=filtered]").get_attribute("src") or ""
    wait(browser, lambda: filtered().startswith("data:image/png"))
    before = filtered()
    cells = browser.find_elements("css selector", "#kernels .kernel-grid input")
    assert [c.get_attribute("value") for c in cells] == ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    retype(cells[4], "1")
    wait(browser, lambda: filtered() != before)
    kernel = [["-1", "0", "1"], ["-2", "1", "2"], ["-1", "0", "1"]]
    expected = httpx.post(lessons_server + "api/kernels/filter", json={"image": "sample:city", "kernel": kernel})
    wait(browser, lambda: filtered() == expected.json()["filtered"])  # the latest edit is what is shown
    named = Select(browser.find_element("css selector", "#kernels .kernel select"))
    assert named.first_selected_option.text == "custom"
    caption = browser.find_element("css selector", "#kernels figure:nth-child(2) figcaption:last-child")
    assert caption.text.startswith("custom 3x3 · clipped to 0..255")

    edited = filtered()
    named.select_by_value("gaussian")
    wait(browser, lambda: filtered() != edited)
    cells = browser.find_elements("css selector", "#kernels .kernel-grid input")
    assert len(cells) == 25 and cells[12].get_attribute("value") == "36/256"

    retype(cells[0], "1/")  # half-typed: marked, and nothing is sent
    assert browser.find_elements("css selector", "#kernels .kernel-grid input:invalid") == [cells[0]]


def test_an_upload_and_the_webcam_become_the_playgrounds_picture(browser, lessons_server, tmp_path):
    import httpx

    open_panel(browser, lessons_server, "kernels")
    caption = lambda: browser.find_element("css selector", "#kernels figure.drop figcaption:last-child").text
    filtered = lambda: browser.find_element("css selector", "#kernels img[alt=filtered]").get_attribute("src") or ""
    wait(browser, lambda: caption().startswith("grey 384x256"))
    photo = tmp_path / "photo.png"
    Image.fromarray(a_photo(1200, 300)).save(photo)
    browser.find_element("css selector", "#kernels input[type=file]").send_keys(str(photo))
    wait(browser, lambda: caption().startswith("grey 1024x256"))
    assert "photo.png (from 1200x300)" in browser.find_element("css selector", "#kernels .picture select").text
    browser.find_element("css selector", "#kernels .picture input[type=checkbox]").click()  # colour
    wait(browser, lambda: caption().startswith("colour 1024x256") and pixels(filtered()).shape == (256, 1024, 3))

    for seed in range(8):  # other tabs' uploads push ours out of the server's few
        httpx.post(lessons_server + "api/pictures", json={"image": png_data_url(a_photo(30, 20, seed))})
    before = filtered()
    retype(browser.find_elements("css selector", "#kernels .kernel-grid input")[4], "3")
    wait(browser, lambda: filtered() != before)  # the page sent its picture again and carried on
    assert pixels(filtered()).shape == (256, 1024, 3) and not browser.find_element("id", "error").is_displayed()

    browser.find_element("xpath", "//section[@id='kernels']//button[text()='Webcam']").click()
    wait(browser, lambda: caption().startswith("colour 640x480"))  # Chromium's fake camera


def test_stepping_the_convolution_animation(browser, lessons_server):
    open_panel(browser, lessons_server, "convolution")
    written = lambda: browser.find_element("css selector", "#convolution pre.multiply-add").text
    taps = lambda: {
        (r.get_attribute("data-row"), r.get_attribute("data-col"))
        for r in browser.find_elements("css selector", "#convolution rect.tap")
    }
    wait(browser, lambda: "=" in written())
    first, first_taps = written(), taps()
    assert first_taps == {(str(r), str(c)) for r in range(3) for c in range(3)}
    browser.find_element("xpath", "//section[@id='convolution']//button[text()='Step']").click()
    wait(browser, lambda: written() != first)
    assert taps() == {(str(r), str(c + 1)) for r in range(3) for c in range(3)}  # one column to the right
    terms, total = written().split(" = ")
    products = re.findall(r"(-?\d+)×\(?(-?\d+)\)?", terms)
    assert len(products) == 9 and float(total) == sum(int(a) * int(b) for a, b in products)
    outputs = [t.text for t in browser.find_elements("css selector", "#convolution .grids figure:nth-child(3) text")]
    assert outputs[:2] == [first.split(" = ")[1], total] and outputs[2] == ""  # the output fills in

    for name, value in (("size", "8"), ("stride", "2"), ("padding", "1")):
        retype(browser.find_element("css selector", f"#convolution input[name={name}]"), value)
    explanation = lambda: browser.find_element("css selector", "#convolution .explanation").text
    wait(browser, lambda: "10x10 padded input" in explanation())
    assert "does not land evenly" in explanation() and "output 4x4" in browser.page_source
    wait(browser, lambda: len(browser.find_elements("css selector", "#convolution .stage img")) == 12)
    for _ in range(5):
        browser.find_element("xpath", "//section[@id='convolution']//button[text()='Step']").click()
    wait(browser, lambda: "row 2, column 2 of 4x4" in browser.find_element("css selector", "#convolution .where").text)
    play = browser.find_element("xpath", "//section[@id='convolution']//button[text()='Play']")
    play.click()
    wait(browser, lambda: "row 2, column 3 of 4x4" in browser.find_element("css selector", "#convolution .where").text)
    play.click()
    assert play.text == "Play"

    retype(browser.find_element("css selector", "#convolution input[name=kernel]"), "7")
    retype(browser.find_element("css selector", "#convolution input[name=size]"), "3")
    wait(browser, lambda: "fits nowhere" in explanation())
    assert not browser.find_element("xpath", "//section[@id='convolution']//button[text()='Step']").is_enabled()
