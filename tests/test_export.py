"""ONNX export: every registry model and a custom nn.Module, checked by onnx.checker and matched by onnxruntime
against PyTorch (max abs 1e-4, fp32) on a batch of 3 and of 1 from one file (the batch is a free dimension: the
exporter traces 2 images)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.data import Preprocess
from cnnlab.errors import CnnlabError
from cnnlab.export import export
from cnnlab.models import MODELS, create_model, get_spec
from cnnlab.predict import Predictor

# (input size, why) where a model's own default would make the test slow: the ResNets take any size; AlexNet and
# VGG pool to 6x6 / 7x7, which the exporter writes as a plain pooling only from a multiple of it (224)
SIZES = {"resnet18": 64, "resnet34": 64, "resnet50": 64}
NARROW = ("alexnet", "vgg")  # their 4096-wide fc layers (100M+ weights) narrowed: the same operators, 1/1000 the file


def narrowed(model: nn.Module) -> nn.Module:
    """AlexNet/VGG with 64-wide hidden fc layers instead of 4096: conv, pooling and classifier operators unchanged."""
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    if len(linears) == 3:
        layers = list(model.classifier)
        first, last = layers.index(linears[0]), layers.index(linears[2])
        layers[first] = nn.Linear(linears[0].in_features, 64)
        layers[layers.index(linears[1])] = nn.Linear(64, 64)
        layers[last] = nn.Linear(64, linears[2].out_features)
        model.classifier = nn.Sequential(*layers)
    return model


def registry_predictor(name: str) -> Predictor:
    spec = get_spec(name)
    c, h, _ = spec.default_input
    size = SIZES.get(name, h)
    kw = {"mean": [0.5] * c, "std": [0.25] * c} if spec.takes_normalization else {}
    torch.manual_seed(0)
    model = create_model(name, in_channels=c, num_classes=10, image_size=size, **kw)
    if name.startswith(NARROW):
        model = narrowed(model)
    for m in model.modules():  # batch norm with statistics of its own, not the identity of a fresh one
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return Predictor(
        model, Preprocess((c, size, size), (0.5,) * c, (0.25,) * c), [f"c{i}" for i in range(10)], spec.outputs
    )


def check_parity(predictor: Predictor, path) -> None:
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = predictor.model.eval()
    for batch in (3, 1):  # few: VGG and AlexNet take 224x224 images (the only size their pooling exports as is)
        x = torch.randn(batch, *predictor.input_shape, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == expected.shape == (batch, 10)
        assert np.abs(got - expected).max() <= 1e-4, (batch, np.abs(got - expected).max())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registry_model_matches_in_onnxruntime(name, tmp_path):
    predictor = registry_predictor(name)
    done = export(predictor, tmp_path / f"{name}.onnx", check=False)
    check_parity(predictor, done.path)
    meta = {p.key: p.value for p in onnx.load(str(done.path)).metadata_props}
    c, h, w = predictor.input_shape
    assert meta["cnnlab.input_shape"] == f"{c}x{h}x{w}"
    assert json.loads(meta["cnnlab.mean"]) == [0.5] * c and json.loads(meta["cnnlab.std"]) == [0.25] * c
    assert json.loads(meta["cnnlab.classes"]) == [f"c{i}" for i in range(10)]
    assert list(tmp_path.iterdir()) == [done.path]  # no partial file left behind


class Custom(nn.Module):
    """A model of a user's own making: a residual branch, a concatenation, a global pool."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.GELU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([x, x + self.branch(x)], dim=1)
        return self.head(x.mean(dim=(2, 3)))


def test_custom_module_matches_and_carries_its_contract(tmp_path):
    torch.manual_seed(0)
    predictor = Predictor(
        Custom(), Preprocess((3, 20, 24), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)), [f"k{i}" for i in range(10)]
    )
    done = export(predictor, tmp_path / "custom.onnx")
    assert done.max_difference is not None and done.max_difference <= 1e-4
    check_parity(predictor, done.path)
    meta = {p.key: p.value for p in onnx.load(str(done.path)).metadata_props}
    assert meta["cnnlab.input_shape"] == "3x20x24" and json.loads(meta["cnnlab.std"]) == [0.2, 0.25, 0.3]


def test_torchscript_export_carries_the_contract(tmp_path):
    torch.manual_seed(0)
    predictor = Predictor(Custom(), Preprocess((3, 16, 16), (0.5,) * 3, (0.25,) * 3), [f"k{i}" for i in range(10)])
    done = export(predictor, tmp_path / "custom.pt", format="torchscript")
    files = {"cnnlab.json": ""}
    loaded = torch.jit.load(str(done.path), _extra_files=files)
    x = torch.randn(5, 3, 16, 16)
    assert torch.allclose(loaded(x), predictor.model(x), atol=1e-5)
    assert json.loads(files["cnnlab.json"])["cnnlab.input_shape"] == "3x16x16"


class Unexportable(nn.Module):
    def forward(self, x):
        return torch.from_numpy(np.sort(x.detach().numpy(), axis=1)).flatten(1)[:, :10]  # leaves torch


def test_a_model_that_cannot_be_exported_says_why_in_a_line(tmp_path):
    predictor = Predictor(Unexportable(), Preprocess((1, 8, 8), (0.5,), (0.25,)), [str(i) for i in range(10)])
    with pytest.raises(CnnlabError) as error:
        export(predictor, tmp_path / "bad.onnx", check=False)
    assert "cannot be exported to ONNX" in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_a_trained_run(tmp_path, mnist_root, capsys):
    assert (
        main(
            [
                "train",
                "mnist-cnn",
                "--dataset",
                "mnist",
                "--data-root",
                str(mnist_root),
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "runs"),
                "--name",
                "m",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    capsys.readouterr()
    run = tmp_path / "runs" / "m"
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'model.onnx'}" in out and "checked with onnxruntime" in out
    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    record = json.loads((run / "run.json").read_text())
    assert json.loads(meta["cnnlab.classes"]) == record["data"]["classes"]
    assert json.loads(meta["cnnlab.mean"]) == pytest.approx(record["data"]["mean"])
    predictor = Predictor.from_run(run)
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    pixels = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    expected = predictor.scores(pixels).numpy()
    got = session.run(None, {"image": predictor.inputs(pixels).numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_cli_export_refuses_a_wrong_suffix_before_any_work(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--out", "model.onnx.txt"]) == 2
    assert "must end in .onnx" in capsys.readouterr().err


def test_without_onnx_installed_one_line_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    predictor = Predictor(Custom(), Preprocess((3, 8, 8), (0.5,) * 3, (0.25,) * 3), [str(i) for i in range(10)])
    with pytest.raises(CnnlabError, match=r"needs the onnx package: pip install 'cnnlab\[export\]'"):
        export(predictor, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
