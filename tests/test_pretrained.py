"""ImageNet weights: checked downloads from a local HTTP server (never the internet), the cache torch uses, the
1,000 class names, predictions with no run, and transfer learning (frozen features, fine-tuning)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, pretrained
from cnnlab.models.pretrained import IMAGENET_WEIGHTS, PretrainedWeights, cache_folder, fetch, imagenet_classes

REAL_URLOPEN = urllib.request.urlopen  # conftest allows file:// only; these tests also reach their own server


def local_only(url, *args, **kwargs):
    if not str(url).startswith("http://127.0.0.1:"):
        raise urllib.error.URLError("network disabled in tests")
    return REAL_URLOPEN(url, *args, **kwargs)


class Server:
    """A local file server in a thread: counts requests; `cut` names files whose body it stops half-way."""

    def __init__(self, folder: Path):
        self.folder, self.requests, self.cut = folder, [], set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                path = server.folder / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path.name in server.cut:  # a killed download: the connection closes mid-body
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> tuple[bytes, dict]:
    """A made-up resnet18 state dict (1000 classes, torchvision's key names) as torch.save writes it."""
    torch.manual_seed(1)
    state = create_model("resnet18", in_channels=3, num_classes=1000, image_size=224).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path.read_bytes(), state


@pytest.fixture
def served(tmp_path, monkeypatch, resnet18_file):
    """The made-up file served under a torchvision-style name whose hex is its SHA-256's start; an empty cache."""
    body, state = resnet18_file
    name = f"resnet18-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    (tmp_path / "served" / "models").mkdir(parents=True)
    (tmp_path / "served" / "models" / name).write_bytes(body)
    server = Server(tmp_path / "served")
    monkeypatch.setenv("CNNLAB_WEIGHTS_URL", server.url)
    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setitem(IMAGENET_WEIGHTS, "resnet18", PretrainedWeights("resnet18", name, 69.758))
    yield server, IMAGENET_WEIGHTS["resnet18"], state
    server.close()


def test_class_names_are_imagenets_thousand():
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert (names[0], names[1], names[207], names[281]) == ("tench", "goldfish", "golden retriever", "tabby cat")
    assert (names[145], names[340], names[954], names[999]) == ("king penguin", "zebra", "banana", "toilet paper")


def test_table_uses_torchvisions_names_and_each_file_fits_its_model():
    assert IMAGENET_WEIGHTS["resnet18"].file == "resnet18-f37072fd.pth"
    assert IMAGENET_WEIGHTS["alexnet"].file == "alexnet-owt-7be5be79.pth"
    assert IMAGENET_WEIGHTS["vgg16"].url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert set(IMAGENET_WEIGHTS) == {"alexnet", "resnet18", "resnet34", "resnet50"} | {
        f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")
    }
    for weights in IMAGENET_WEIGHTS.values():
        assert len(weights.hash_prefix) == 8


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"TORCH_HOME": "/t/home"}, "/t/home/hub/checkpoints"),
        ({"XDG_CACHE_HOME": "/x/cache"}, "/x/cache/torch/hub/checkpoints"),
        ({"HOME": "/h"}, "/h/.cache/torch/hub/checkpoints"),
    ],
)
def test_cache_folder_follows_torch_hub(monkeypatch, env, expected):
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cache_folder() == Path(expected)


def test_fetched_cached_loaded_then_served_from_the_cache(served):
    server, weights, state = served
    path = fetch(weights, progress=False, log=lambda line: None)
    assert path == cache_folder() / weights.file and len(server.requests) == 1
    assert list(path.parent.iterdir()) == [path]  # no partial file beside it
    model, _ = pretrained.imagenet_model("resnet18", progress=False, log=lambda line: None)
    assert len(server.requests) == 1  # the second use: the cache, no request
    assert torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"])
    assert torch.equal(model.state_dict()["fc.bias"], state["fc.bias"])


def test_corrupted_download_is_refused_and_removed(served):
    server, weights, _ = served
    served_file = server.folder / "models" / weights.file
    body = bytearray(served_file.read_bytes())
    body[1000] ^= 0xFF
    served_file.write_bytes(bytes(body))
    with pytest.raises(CnnlabError, match=f"SHA-256 starts .*not {weights.hash_prefix}.*removed"):
        fetch(weights, progress=False, log=lambda line: None)
    assert list(cache_folder().iterdir()) == []


def test_truncated_download_is_refused(served):
    server, weights, _ = served
    served_file = server.folder / "models" / weights.file
    served_file.write_bytes(served_file.read_bytes()[:5000])  # whole as served, but not the file its name says
    with pytest.raises(CnnlabError, match="SHA-256"):
        fetch(weights, progress=False, log=lambda line: None)
    assert list(cache_folder().iterdir()) == []


def test_killed_download_leaves_no_file_taken_for_whole(served):
    server, weights, state = served
    server.cut.add(weights.file)
    with pytest.raises(CnnlabError, match="cut off|stopped after"):
        fetch(weights, progress=False, log=lambda line: None)
    assert list(cache_folder().iterdir()) == []
    server.cut.clear()  # the next run downloads it whole
    assert fetch(weights, progress=False, log=lambda line: None).is_file()
    assert len(server.requests) == 2


def test_offline_is_one_line_naming_the_address_and_the_folder(served, monkeypatch):
    server, weights, _ = served
    server.close()
    with pytest.raises(CnnlabError) as error:
        fetch(weights, progress=False, log=lambda line: None)
    message = str(error.value)
    assert "\n" not in message and weights.url in message and str(cache_folder()) in message
    assert weights.file in message


def test_file_placed_by_hand_is_used_without_a_request(served, resnet18_file):
    server, weights, state = served
    cache_folder().mkdir(parents=True)
    (cache_folder() / weights.file).write_bytes(resnet18_file[0])
    model, _ = pretrained.imagenet_model("resnet18", progress=False, log=lambda line: None)
    assert server.requests == []
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])


def test_wrong_file_under_torchvisions_name_is_refused_not_loaded(tmp_path, monkeypatch, resnet18_file):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNNLAB_WEIGHTS_URL", "http://127.0.0.1:9/")  # nothing may be asked of it
    placed = cache_folder() / "resnet18-f37072fd.pth"  # the real name, not the real file
    placed.parent.mkdir(parents=True)
    placed.write_bytes(resnet18_file[0])
    with pytest.raises(CnnlabError, match="found in the cache.*not f37072fd"):
        pretrained.imagenet_model("resnet18", progress=False, log=lambda line: None)
    assert not placed.exists()


def test_a_model_without_imagenet_weights_is_refused(capsys):
    assert main(["predict", "--model", "mnist-cnn", "--weights", "imagenet", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist-cnn has no ImageNet weights" in err and "resnet18" in err


def photo(path: Path, size=(300, 200), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_predict_with_no_run_gives_top5_imagenet_names(served, tmp_path, capsys):
    _, weights, state = served
    image = photo(tmp_path / "photo.jpg")
    assert main(["predict", "--model", "resnet18", "--weights", "imagenet", str(image), "--top-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "shorter side to 256, the central 224x224" in out
    rows = [line.split() for line in out.splitlines()[1:] if line.strip().endswith("probability")]
    assert len(rows) == 5
    # the same answer by hand: torchvision's view (resize 256, centre crop 224), ImageNet's mean/std
    model = create_model("resnet18", in_channels=3, num_classes=1000, image_size=224)
    model.load_state_dict(state)
    view = Image.open(image).convert("RGB").resize((224, 224), Image.BILINEAR, box=(50 + 12.5, 12.5, 237.5, 187.5))
    x = (
        torch.from_numpy(np.array(view)).permute(2, 0, 1).float() / 255 - torch.tensor(weights.mean)[:, None, None]
    ) / torch.tensor(weights.std)[:, None, None]
    best = model.eval()(x[None]).softmax(1).topk(5).indices[0].tolist()
    names = imagenet_classes()
    assert [" ".join(row[:-2]) for row in rows] == [names[i] for i in best]


def test_gradcam_on_layer4_of_a_pretrained_model(served, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    image = photo(tmp_path / "cat.jpg", (256, 256))
    assert (
        main(
            [
                "explain",
                "--model",
                "resnet18",
                "--weights",
                "imagenet",
                str(image),
                "--method",
                "gradcam",
                "--layer",
                "layer4",
                "--save-array",
                "cam.npy",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote explanations/resnet18/cat-gradcam-layer4.png" in out
    cam = np.load(tmp_path / "cam.npy")
    assert cam.shape[-2:] == (224, 224) and np.isfinite(cam).all() and cam.max() > cam.min()


def test_weights_imagenet_refused_with_a_run_folder(capsys):
    assert main(["predict", "runs/x", "a.png", "--weights", "imagenet"]) == 2
    assert "--weights imagenet goes with --model" in capsys.readouterr().err


def tiny_folder(root: Path, per_class=10) -> Path:
    for k, name in enumerate(["cats", "dogs"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            photo(root / name / f"{i}.png", (40, 40), seed=100 * k + i)
    return root


@pytest.mark.parametrize("mode", ["freeze", "finetune"])
def test_transfer_learning_from_served_imagenet_weights(served, tmp_path, mode, capsys):
    server, weights, state = served
    folder = tiny_folder(tmp_path / "photos")
    flag = ["--freeze", "features"] if mode == "freeze" else ["--finetune"]
    assert (
        main(
            [
                "train",
                "resnet18",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(folder),
                "--image-size",
                "32",
                "--weights",
                "imagenet",
                *flag,
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--out",
                str(tmp_path / "runs"),
                "--name",
                "t",
                "--no-progress",
                "--device",
                "cpu",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"started from {weights.file}" in out
    run = tmp_path / "runs" / "t"
    record = json.loads((run / "run.json").read_text())
    transfer = record["transfer"]
    assert transfer["weights"] == weights.file and transfer["source"] == weights.url
    assert transfer["sha256"] == hashlib.sha256((server.folder / "models" / weights.file).read_bytes()).hexdigest()
    assert record["data"]["mean"] == pytest.approx(list(pretrained.IMAGENET_MEAN))
    from safetensors.torch import load_file

    trained = load_file(run / "best.safetensors")
    conv_same = torch.equal(trained["conv1.weight"], state["conv1.weight"])
    if mode == "freeze":
        assert record["config"]["recipe"]["freeze"] == "features"
        assert "frozen: every layer but 'fc'" in transfer["frozen"]
        assert transfer["trainable"] == 512 * 2 + 2
        assert conv_same  # the features did not move
    else:
        assert record["config"]["recipe"]["pretrained_lr_scale"] == 0.1 and transfer["frozen"] == ""
        assert transfer["trainable"] > 11_000_000
        assert not conv_same  # every layer trained
    assert trained["fc.weight"].shape == (2, 512)


def test_freeze_without_weights_is_refused(tmp_path, capsys):
    folder = tiny_folder(tmp_path / "photos", per_class=3)
    assert (
        main(
            [
                "train",
                "resnet18",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(folder),
                "--freeze",
                "features",
                "--out",
                str(tmp_path / "runs"),
            ]
        )
        == 2
    )
    assert "needs pretrained weights: add --weights imagenet" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
