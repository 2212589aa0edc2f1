"""A pretrained network seen from inside, with no run: its layers, explanations on ImageNet's classes, the top
patches of several layers (Zeiler & Fergus's figure) and the explorer. The weights are stand-ins served locally
(as in test_pretrained.py), for resnet18 evaluated at 64x64 so that each test takes seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pretrained import photo, resnet18_file, served  # noqa: F401 (fixtures)

from cnnlab.cli import main
from cnnlab.models.pretrained import IMAGENET_WEIGHTS, PretrainedWeights, imagenet_classes

MODEL = ["--model", "resnet18", "--weights", "imagenet"]


@pytest.fixture
def resnet64(served, monkeypatch):  # noqa: F811
    """The served stand-in resnet18, cut and resized to 64x64 instead of 224x224."""
    _, weights, state = served
    small = PretrainedWeights("resnet18", weights.file, weights.top1, resize=73, crop=64)
    monkeypatch.setitem(IMAGENET_WEIGHTS, "resnet18", small)
    return small, state


def test_layers_of_a_pretrained_model_list_layer4(resnet64, capsys):
    assert main(["layers", *MODEL]) == 0
    out = capsys.readouterr().out
    assert "resnet18 (imagenet weights), input 3x64x64" in out
    rows = {line.split()[0]: line.split()[2] for line in out.split("output shape\n")[1].splitlines()}
    assert rows["layer4"] == "512x2x2" and rows["layer1"] == "64x16x16" and rows["fc"] == "1000"
    assert "<- the default --layer" in out.split("\nlayer4 ")[1].splitlines()[0]


def test_gradcam_defaults_to_layer4_and_titles_the_imagenet_class(resnet64, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    image = photo(tmp_path / "cat.jpg", (100, 80))
    assert main(["explain", *MODEL, str(image), "--method", "gradcam", "--save-array", "cam.npy"]) == 0
    out = capsys.readouterr().out
    assert "100x80: shorter side to 73, the central 64x64" in out
    predicted = out.split("predicted ")[1].split(" (probability")[0]
    assert predicted in imagenet_classes()
    assert (tmp_path / "explanations" / "resnet18" / "cat-gradcam.png").stat().st_size > 10_000
    cam = np.load(tmp_path / "cam.npy")
    assert cam.shape == (1, 64, 64) and cam.max() > 0  # layer4's map, not all zero

    from cnnlab.inspect import explain
    from cnnlab.predict import PretrainedPredictor

    resnet = PretrainedPredictor.imagenet("resnet18", progress=False, log=lambda line: None)
    result = explain(resnet, "gradcam", [str(image)])
    assert np.allclose(result.array, cam) and "layer layer4" in result.figure._suptitle.get_text()
    assert f"predicted {predicted}" in result.figure.axes[0].get_title()


def test_filters_of_conv1_in_colour(resnet64, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["explain", *MODEL, "--method", "filters", "--save-array", "w.npy"]) == 0
    assert "conv1: 64 filters of 3x7x7" in capsys.readouterr().out
    _, state = resnet64
    assert np.array_equal(np.load(tmp_path / "w.npy"), state["conv1.weight"].numpy())


def photo_folder(root: Path, count=8) -> Path:
    for i in range(count):
        (root / f"kind{i % 2}").mkdir(parents=True, exist_ok=True)
        photo(root / f"kind{i % 2}" / f"{i}.png", (90 + 4 * i, 70), seed=i)
    return root


def test_top_patches_by_depth_one_block_per_layer_from_the_folder(resnet64, tmp_path, monkeypatch, capsys):
    from cnnlab.inspect.patches import images_to_search, top_patches_by_depth
    from cnnlab.plots import depth_patches_figure
    from cnnlab.predict import PretrainedPredictor

    monkeypatch.chdir(tmp_path)
    photos = photo_folder(tmp_path / "photos")
    assert main(["patches", *MODEL, "--data-root", str(photos), "--channels", "2", "--patches", "3"]) == 0
    out = capsys.readouterr().out
    layers = ["conv1", "layer1.1.conv2", "layer2.1.conv2", "layer3.1.conv2", "layer4.1.conv2"]
    assert [line.split(":")[0] for line in out.splitlines() if ": patches up to" in line] == layers
    assert "strongest" in out and str(photos / "kind") in out
    assert (tmp_path / "explanations" / "resnet18" / "patches-by-depth.png").stat().st_size > 10_000

    resnet = PretrainedPredictor.imagenet("resnet18", progress=False, log=lambda line: None)
    images, searched, files = images_to_search(resnet, data_root=photos)
    assert images.shape == (8, 3, 64, 64) and len(files) == 8 and searched == f"8 images of {photos}"
    tops = top_patches_by_depth(resnet, images, channels=2, per_channel=3)
    assert [top.layer for top in tops] == layers
    sizes = []
    for top in tops:
        assert top.index.shape == (2, 3) and (top.index < 8).all()
        top_, left, bottom, right = np.moveaxis(top.box, -1, 0)
        assert (top_ >= 0).all() and (left >= 0).all() and (bottom <= 64).all() and (right <= 64).all()
        assert ((bottom > top_) & (right > left)).all()
        for k in range(2):  # each patch is its image cut at its box
            t, le, b, r = top.box[k, 0]
            assert np.array_equal(top.patches[k][0], images[top.index[k, 0], :, t:b, le:r].numpy())
        sizes.append(int((bottom - top_).max()))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # deeper layers see more of the image
    figure = depth_patches_figure(tops, [top.layer for top in tops], "by depth")
    assert [block._suptitle.get_text() for block in figure.subfigs] == layers


def test_explain_top_patches_of_a_pretrained_model_searches_the_folder(resnet64, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photos = photo_folder(tmp_path / "photos", 4)
    assert main(["explain", *MODEL, "--method", "top-patches", "--data-root", str(photos), "--channels", "2"]) == 0
    assert f"layer4: searched 4 images of {photos}" in capsys.readouterr().out
    assert main(["explain", *MODEL, "--method", "top-patches"]) == 2
    assert "give a folder of photos to search with --data-root" in capsys.readouterr().err


def test_top_patches_by_depth_of_a_trained_run(served_runs, tmp_path, capsys):
    out = tmp_path / "depth.png"
    run = served_runs / "lesson-cnn-cifar10"
    assert main(["patches", str(run), "--channels", "2", "--limit", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conv1: patches up to 3x3 pixels" in printed and "conv3: patches" in printed
    assert out.stat().st_size > 10_000


def test_the_explorer_looks_inside_a_pretrained_model(resnet64, tmp_path):
    import base64

    from fastapi.testclient import TestClient
    from PIL import Image

    from cnnlab.predict import PretrainedPredictor
    from cnnlab.serve import create_app

    resnet = PretrainedPredictor.imagenet("resnet18", progress=False, log=lambda line: None)
    app = create_app(tmp_path / "no-runs-yet", pretrained=[resnet])
    client = TestClient(app, base_url="http://127.0.0.1")
    (listed,) = client.get("/api/explore/runs").json()
    assert listed["name"] == "resnet18-imagenet" and listed["dataset"] == "imagenet"
    assert listed["input_shape"] == [3, 64, 64] and listed["classes"] == imagenet_classes()
    assert listed["test_accuracy"] == pytest.approx(0.69758)

    image = "data:image/png;base64," + base64.b64encode(photo(tmp_path / "p.png", (120, 90)).read_bytes()).decode()
    answer = client.post("/api/explore/look", json={"run": "resnet18-imagenet", "image": image}).json()
    scores = np.array(answer["scores"])
    assert scores.shape == (1000,) and scores.sum() == pytest.approx(1, abs=1e-4)
    top5 = scores.argsort()[::-1][:5]
    assert [imagenet_classes()[k] for k in top5] == [
        name for name, _ in resnet.top_k([Image.open(tmp_path / "p.png")], 5)[0]
    ]
    assert "gradcam" in answer["methods"] and answer["label_smoothing"] == 0
    assert any("the central 64x64" in note for note in answer["notes"])
    layers = {layer["name"]: layer for layer in answer["layers"]}
    assert layers["layer4.1.conv2"]["shape"] == [512, 2, 2] and layers["fc"]["shape"] == [1000]

    heat = client.post(
        "/api/explore/attribution",
        json={"run": "resnet18-imagenet", "image": image, "target": int(top5[0]), "method": "gradcam"},
    ).json()
    assert heat["class"] == imagenet_classes()[top5[0]] and not heat["empty"] and heat["range"][1] > 0
    refused = client.get("/api/explore/random", params={"run": "resnet18-imagenet"})
    assert refused.status_code == 400 and "upload, film or drop a photo" in refused.json()["error"]


def test_the_explorer_page_shows_an_uploaded_photo_through_resnet(resnet64, browser, tmp_path):
    from conftest import serving
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from cnnlab.predict import PretrainedPredictor

    def found(css):
        return browser.find_elements("css selector", css)

    def wait(condition):
        return WebDriverWait(browser, 60).until(lambda _: condition())

    resnet = PretrainedPredictor.imagenet("resnet18", progress=False, log=lambda line: None)
    picture = photo(tmp_path / "photo.png", (120, 90))
    expected = [name for name, _ in resnet.top_k([str(picture)], 5)[0]]
    with serving(tmp_path / "no-runs", pretrained=[resnet]) as url:
        browser.get(url + "#explore")
        browser.refresh()
        wait(lambda: found("#explore select.runs option[value='resnet18-imagenet']"))
        Select(found("#explore select.runs")[0]).select_by_value("resnet18-imagenet")
        wait(lambda: found("#explore input.file"))
        found("#explore input.file")[0].send_keys(str(picture))
        wait(lambda: len(found("#explore button.bar")) == 20 and found("#explore .layer"))
        names = [bar.find_element("css selector", ".name").text for bar in found("#explore button.bar")]
        assert names[:5] == expected  # the top 5 with ImageNet's names, as `cnnlab predict` says
        assert "20 most likely of 1000 classes" in found("#explore .bars")[0].text
        found("#explore button.bar")[0].click()  # where the evidence for the top class is: Grad-CAM on layer4
        wait(lambda: found("#explore img.overlay")[0].get_attribute("src"))
        assert expected[0] in found("#explore .evidence")[0].text
        assert "resnet18" in found("#explore .info")[0].text and "imagenet" in found("#explore .info")[0].text
