"""The explanation methods are declared once (cnnlab.inspect.methods.METHODS) and everything else is made from that
declaration: the command's choices and option flags, explain's options, the explorer's menu and request schema."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.inspect import attribute, explain
from cnnlab.inspect.methods import EXPLORER, METHODS, offered

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnnlab"

# A string equal to a method's name that means something else there: the registry is not repeated by these.
OTHER_MEANINGS = {
    ("plots/filters.py", "filters"): "a convolution lesson's result: the filters it applied",
    ("serve/lessons.py", "filters"): "the same result, sent to the page",
    ("filters/conv_demo.py", "filters"): "the same result, made",
    ("cli/filters.py", "filters"): "the same result, printed",
    ("serve/static/convolution.js", "filters"): "a CSS class of the convolution page",
    ("inspect/__init__.py", "maximize"): "the function's name, exported lazily",
    ("inspect/__init__.py", "deepdream"): "the function's name, exported lazily",
    ("inspect/ascent.py", "maximize"): "the progress bar of the function maximize",
    ("inspect/attributions.py", "smoothgrad"): "Captum's NoiseTunnel type",
    ("serve/static/glossary.js", "saliency"): "the glossary term as the page prints it",
    ("serve/static/glossary.js", "occlusion"): "the glossary term as the page prints it",
}


def string_literals(path: Path) -> list[tuple[str, int]]:
    """(string, line) of every string literal of a Python or JavaScript file."""
    text = path.read_text()
    if path.suffix == ".py":
        return [(n.value, n.lineno) for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)]
    return [
        (m.group(2), number)
        for number, line in enumerate(text.splitlines(), 1)
        for m in re.finditer(r"""(["'`])((?:(?!\1).)*)\1""", line)
    ]


def test_every_method_name_is_written_once_in_src():
    found: dict[str, list[str]] = {name: [] for name in METHODS}
    others = set()
    for path in sorted([*SRC.rglob("*.py"), *SRC.rglob("*.js")]):
        where = path.relative_to(SRC).as_posix()
        for value, line in string_literals(path):
            if value in found:
                if (where, value) in OTHER_MEANINGS:
                    others.add((where, value))
                else:
                    found[value].append(f"{where}:{line}")
    repeated = {name: places for name, places in found.items() if len(places) != 1}
    assert not repeated, f"method names written outside the registry (take them from METHODS): {repeated}"
    assert all(places[0].startswith("inspect/methods.py:") for places in found.values())
    assert others == set(OTHER_MEANINGS), "an exception above is no longer needed: remove it"


def test_the_docs_table_names_exactly_the_registrys_methods():
    page = (ROOT / "docs" / "guide" / "inspecting.md").read_text()
    table = page.split("| method | shows |")[1].split("\n\n")[0]
    named = re.findall(r"`([^`]+)`", "\n".join(row.split("|")[1] for row in table.strip().splitlines()[1:]))
    assert sorted(named) == sorted(METHODS)


def test_the_registry_loads_without_torch_and_the_command_line_too():
    code = "import sys, cnnlab.inspect.methods, cnnlab.cli.inspection; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_every_method_has_its_function_which_takes_its_options_object():
    for name, method in METHODS.items():
        function = method.compute()
        parameters = list(inspect.signature(function).parameters)
        if method.heat_map:  # (predictor, x, targets, options[, layer]) called by attribute
            assert parameters[:4] == ["predictor", "x", "targets", "options"], name
            assert ("layer" in parameters) == bool(method.layer), name
        else:  # an explanation.py picture: (predictor, asked), asked.options its options object
            assert parameters == ["predictor", "asked"], name
        assert not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values()), name


def test_per_method_defaults_replace_the_hidden_branch():
    assert METHODS["integrated-gradients"].options().steps == 32
    assert METHODS["maximize"].options().steps == 200
    assert METHODS["deepdream"].options().steps == 10
    assert [METHODS[m].options().channels for m in ("filters", "activations", "top-patches")] == [64, 16, 8]
    assert METHODS["smoothgrad"].options().samples == 25 and METHODS["smoothgrad"].options().noise == 0.15


def test_an_option_the_method_does_not_take_is_refused_naming_those_it_does(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    image = np.zeros((1, 1, 8, 8), np.uint8)
    with pytest.raises(CnnlabError, match=r"^method smoothgrad takes no option steps; its options are samples, noise$"):
        explain(model, "smoothgrad", image, steps=3)
    with pytest.raises(CnnlabError, match=r"^method gradcam takes no option window; it has no options$"):
        explain(model, "gradcam", image, window=3)
    with pytest.raises(CnnlabError, match="method saliency takes no layer"):
        explain(model, "saliency", image, layer="0")
    with pytest.raises(CnnlabError, match="method filters takes no target"):
        explain(model, "filters", target=1)
    with pytest.raises(CnnlabError, match=r"noise 2: must be a number above 0, at most 1"):
        attribute(model, image, "smoothgrad", noise=2)
    with pytest.raises(CnnlabError, match="unknown attribution method 'filters'; choose one of saliency, smoothgrad"):
        attribute(model, image, "filters")
    smooth = explain(model, "smoothgrad", image, samples=2, noise=0.1)  # the method's own options pass
    assert smooth.array.shape == (1, 8, 8)


@pytest.mark.parametrize("bad", [-1, 0, 10**30, float("nan"), float("inf"), "x", True])
def test_every_option_of_every_method_refuses_absurd_values_in_one_line(bad):
    accepted = {("channel", 0)}  # maximize's channel 0 is the first channel
    for method in METHODS.values():
        for option in fields(method.options):
            if (option.name, bad) in accepted or (option.metadata["kind"] is str and isinstance(bad, str)):
                assert method.settings({option.name: bad}) is not None
                continue
            with pytest.raises(CnnlabError, match=rf"^{option.name} .*: must be") as refused:
                method.settings({option.name: bad})
            assert "\n" not in str(refused.value)


def test_the_command_makes_a_flag_per_option_with_each_methods_default(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "integrated-gradients (default 32): points on the path" in usage
    assert "maximize (default 200): steps of gradient ascent; deepdream (default 10)" in usage
    for name in METHODS:
        assert f" {name} " in usage  # every method listed under "Methods"
    flags = {f.name.replace("_", "-") for m in METHODS.values() for f in fields(m.options)}
    assert all(f"--{flag} " in usage for flag in flags)


def test_the_command_refuses_an_option_of_another_method_in_one_line(tmp_path, capsys):
    from PIL import Image

    from cnnlab.cli import main as cli_main

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    code = cli_main(["explain", "--model", "resnet18", str(image), "--method", "gradcam", "--steps", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "method gradcam takes no option steps" in err and err.count("\n") == 1


def test_the_explorer_offers_the_registrys_methods_and_its_schema_says_so():
    from cnnlab.serve.explore import AttributionRequest, attribution_methods

    assert [m["name"] for m in attribution_methods()] == list(EXPLORER)
    assert AttributionRequest.model_json_schema()["properties"]["method"]["enum"] == list(EXPLORER)
    assert offered(False) == [m for m in EXPLORER if METHODS[m].layer != "conv"]  # an MLP: no Grad-CAM


# --- the method added to show that adding one is one entry: input x gradient ------------------------------------


def test_input_x_gradient_adds_up_to_the_score_of_a_linear_model():
    """For f(x) = w.x + b the gradient is w, so the map's sum is f(x) - b exactly (completeness); it is signed."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()
    x = torch.randn(5, 3, 6, 6)
    target = torch.tensor([0, 1, 2, 3, 1])
    maps = attribute(model, x, "input-x-gradient", target=target)
    scores = model(x).gather(1, target.view(-1, 1))[:, 0] - model[1].bias[target]
    assert maps.shape == (5, 6, 6) and maps.min() < 0 < maps.max()
    assert np.allclose(maps.sum((1, 2)), scores.detach().numpy(), atol=1e-5)


def test_input_x_gradient_is_drawn_signed_by_explain():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).eval()
    image = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    result = explain(model, "input-x-gradient", image, target=1)
    assert result.method == "input-x-gradient" and result.array.shape == (1, 8, 8)
    assert "map for 1" in result.lines[0] and result.figure._suptitle.get_text().endswith("(sum over colours)")
