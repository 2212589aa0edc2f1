"""Seeing inside a CNN, checked: the maps point at the evidence, change when the weights are randomized, the
optimized pictures excite what they should, and every command works end to end on small runs trained here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_mnist
from PIL import Image
from torch import nn

from cnnlab.cli import main
from cnnlab.data import Dataset, ImageSet
from cnnlab.errors import CnnlabError
from cnnlab.inspect import attribute, deepdream, gradient_box, maximize, receptive_field, top_patches
from cnnlab.inspect.attributions import guided_gradients, targets_for
from cnnlab.models import Recipe, create_model, get_spec
from cnnlab.models.layers import default_layer, first_layer_filters, get_layer, layer_output, layer_table
from cnnlab.predict import Predictor, as_predictor
from cnnlab.training.config import RunConfig
from cnnlab.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


SHAPES = ["plus", "cross", "ring"]


def shapes(n: int, seed: int, size: int = 32):
    """A bright 5x5 '+', 'x' or square ring (the class) centred at a random place on dim, smooth colour noise: the
    class is decided by those 25 pixels and nothing else. Returns (images, labels, centres)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 100, (n, 3, size // 4, size // 4)).astype(np.float32))
    images = F.interpolate(coarse, size=(size, size), mode="bilinear").round().to(torch.uint8).numpy()
    labels = rng.integers(0, len(SHAPES), n)
    centres = rng.integers(2, size - 2, (n, 2))
    d = np.arange(-2, 3)
    for image, label, (r, c) in zip(images, labels, centres):
        if label == 0:
            image[:, r + d, c] = image[:, r, c + d] = 255
        elif label == 1:
            image[:, r + d, c + d] = image[:, r + d, c - d] = 255
        else:
            image[:, r + d, c - 2] = image[:, r + d, c + 2] = image[:, r - 2, c + d] = image[:, r + 2, c + d] = 255
    return torch.from_numpy(images), torch.from_numpy(labels), centres


def draw(image: np.ndarray, kind: int, r: int, c: int, value: int) -> None:
    """Kinds 0-2: the classes (plus, cross, ring, 5x5); 3-6: distractors (3x3 square, dash, bar, diagonal)."""
    d = np.arange(-2, 3)
    if kind == 0:
        image[:, r + d, c] = value
        image[:, r, c + d] = value
    elif kind == 1:
        image[:, r + d, c + d] = image[:, r + d, c - d] = value
    elif kind == 2:
        image[:, r + d, c - 2] = image[:, r + d, c + 2] = image[:, r - 2, c + d] = image[:, r + 2, c + d] = value
    elif kind == 3:
        image[:, r - 1 : r + 2, c - 1 : c + 2] = value
    elif kind == 4:
        image[:, r, c - 2 : c + 3] = value
    elif kind == 5:
        image[:, r - 2 : r + 3, c] = value
    else:
        image[:, r + d, c + d] = value


HARD_TRAIN = 3000


def hard_shapes(n: int, seed: int, size: int = 32):
    """The shapes among 2-3 bright distractors (a square, a dash, a bar, a diagonal: none a class), on backgrounds
    of varied level, contrast and grain, everything at random places at least 7 pixels apart: a map that points
    at bright edges rather than at the evidence misses here. Returns (images, labels, centres)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, (n, 3, size // 8, size // 8)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear").numpy()
    level, spread = rng.uniform(20, 120, (n, 1, 1, 1)), rng.uniform(20, 90, (n, 1, 1, 1))
    grain = rng.normal(0, rng.uniform(2, 15, (n, 1, 1, 1)), (n, 3, size, size))
    images = np.clip(level + spread * smooth + grain, 0, 255).round().astype(np.uint8)
    labels, centres = rng.integers(0, 3, n), np.zeros((n, 2), int)
    for i in range(n):
        taken = []

        def place():
            while True:
                rc = rng.integers(3, size - 3, 2)
                if all(max(abs(rc - t)) >= 7 for t in taken):
                    taken.append(rc)
                    return rc

        centres[i] = place()
        draw(images[i], labels[i], *centres[i], 255)
        for _ in range(rng.integers(2, 4)):
            draw(images[i], rng.integers(3, 7), *place(), int(rng.integers(200, 256)))
    return torch.from_numpy(images), torch.from_numpy(labels), centres


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """The lesson CNN trained on the shapes (about 100 steps); returns (run, test images, labels, patch centres)."""
    folder = tmp_path_factory.mktemp("shapes") / "lesson-cnn-shapes"
    x, y, _ = shapes(2000, 0)
    tx, ty, centres = shapes(200, 1)
    data = Dataset("shapes", SHAPES, ImageSet(x, y), ImageSet(tx, ty), "memory")
    recipe = Recipe(epochs=3, batch_size=64, lr=3e-3, optimizer="adamw", schedule="onecycle")
    run = train(RunConfig("lesson-cnn", "shapes", recipe), folder, data=data, progress=False, log=lambda s: None)
    assert run.record.test.accuracy >= 0.95
    return Predictor.from_run(folder), tx, ty, centres


@pytest.fixture(scope="module")
def hard_shapes_run(tmp_path_factory):
    """The lesson CNN trained on the shapes among distractors (4 epochs of 3000); (run, test images, labels,
    centres)."""
    folder = tmp_path_factory.mktemp("hard-shapes") / "lesson-cnn-hard-shapes"
    x, y, _ = hard_shapes(HARD_TRAIN, 0)
    tx, ty, centres = hard_shapes(60, 1)
    data = Dataset("shapes", SHAPES, ImageSet(x, y), ImageSet(tx, ty), "memory")
    recipe = Recipe(epochs=4, batch_size=64, lr=3e-3, optimizer="adamw", schedule="onecycle")
    run = train(RunConfig("lesson-cnn", "shapes", recipe), folder, data=data, progress=False, log=lambda s: None)
    assert run.record.test.accuracy >= 0.95
    return Predictor.from_run(folder), tx, ty, centres


@pytest.fixture(scope="module")
def digit_runs(tmp_path_factory):
    """A fake MNIST on disk (conftest), with an MLP and a mnist-cnn trained on it; returns (data root, runs)."""
    root = make_mnist(tmp_path_factory.mktemp("data"))
    runs = {}
    for model, epochs in (("mlp", 1), ("mnist-cnn", 3)):
        recipe = get_spec(model).recipes["default"].replace(epochs=epochs, batch_size=32)
        folder = root.parent / f"{model}-mnist"
        train(RunConfig(model, "mnist", recipe, data_root=str(root)), folder, progress=False, log=lambda s: None)
        runs[model] = folder
    return root, runs


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (as scipy.stats.rankdata)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps; a flat map (Grad-CAM of a random net can be all zero) ranks nothing: 0."""
    if a.min() == a.max() or b.min() == b.max():
        return 0.0
    return float(np.corrcoef(ranks(a.ravel()), ranks(b.ravel()))[0, 1])


# --- layers, receptive fields, the hand-written guided backpropagation ------------------------------------------


def test_layer_table_lists_what_forward_uses_with_shapes():
    rows = {r.name: r for r in layer_table(create_model("lesson-cnn"), (3, 32, 32))}
    assert rows["conv1"].output_shape == (16, 32, 32) and rows["conv3"].output_shape == (64, 8, 8)
    assert rows["pool"].calls == 3 and rows["pool"].output_shape == (16, 16, 16)  # its first use
    assert rows["fc2"].output_shape == (10,)
    assert default_layer(create_model("lesson-cnn")) == "conv3"
    mlp = create_model("mlp")
    assert default_layer(mlp) is None and [r.kind for r in layer_table(mlp, (1, 28, 28))][0] == "Linear"
    name, weights = first_layer_filters(mlp, (1, 28, 28))  # an MLP's first layer rows, as images
    assert name == "fc1" and weights.shape == (512, 1, 28, 28)


def test_every_attribution_method_can_be_asked_for_by_name():
    from cnnlab.inspect import EXPLANATIONS, METHODS

    assert set(METHODS) <= set(EXPLANATIONS)


def test_unknown_layer_names_the_valid_ones():
    with pytest.raises(CnnlabError, match=r"unknown layer 'conv9'.*conv1, conv2, conv3, pool, fc1"):
        as_predictor(create_model("lesson-cnn")).activations(torch.zeros(1, 3, 32, 32), "conv9")


def test_receptive_field_arithmetic_agrees_with_the_gradient():
    torch.manual_seed(0)
    model = create_model("lesson-cnn").eval()
    expected = {"conv1": (3, 1, -1), "conv2": (8, 2, -3), "conv3": (18, 4, -7), "pool": (4, 2, -1)}
    for name, (size, jump, start) in expected.items():
        layer = get_layer(model, name)
        field = receptive_field(model, layer, (3, 32, 32))
        assert (field.size, field.jump, field.start) == ((size,) * 2, (jump,) * 2, (start,) * 2)
        h, w = as_predictor(model).activations(torch.zeros(1, 3, 32, 32), name).shape[2:]
        for row, col in ((0, 0), (h // 2, w // 2), (1, 2), (h - 1, w - 1)):
            assert field.box(row, col, (32, 32)) == gradient_box(model, layer, (3, 32, 32), 0, row, col)
    resnet = create_model("resnet18-cifar").eval()  # branches: the shortcut joins by the union of the fields
    for name in ("layer2.0.conv1", "layer2"):
        layer = get_layer(resnet, name)
        field = receptive_field(resnet, layer, (3, 32, 32))
        # a channel that a random image turns on: a channel that stays off has no gradient to compare with
        channel = int(layer_output(resnet, torch.randn(4, 3, 32, 32), layer).clamp(min=0).mean((0, 2, 3)).argmax())
        for row, col in ((0, 0), (8, 8), (15, 15)):
            assert field.box(row, col, (32, 32)) == gradient_box(resnet, layer, (3, 32, 32), channel, row, col)
    assert receptive_field(resnet, get_layer(resnet, "layer2"), (3, 32, 32)).size == (25, 25)
    assert receptive_field(resnet, get_layer(resnet, "avgpool"), (3, 32, 32)) is None  # a global pool: no field


@pytest.mark.filterwarnings("ignore:Setting backward hooks")
def test_guided_backprop_catches_functional_relus():
    """Captum's GuidedBackprop hooks nn.ReLU modules only; ours must agree with it there, and also guide F.relu."""
    from captum.attr import GuidedBackprop

    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    modules = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 4),
    ).eval()
    predictor, targets = as_predictor(modules), torch.tensor([1, 2])
    ours = guided_gradients(predictor, x, targets)
    assert torch.allclose(
        ours, GuidedBackprop(modules).attribute(x.clone().requires_grad_(), target=targets), atol=1e-6
    )
    functional = create_model("lesson-cnn").eval()  # F.relu in its forward
    x = torch.randn(1, 3, 32, 32).requires_grad_()
    plain = torch.autograd.grad(functional(x)[0, 1], x)[0]
    assert not torch.allclose(guided_gradients(as_predictor(functional), x, torch.tensor([1])), plain)


# --- the checks that the maps are right ---------------------------------------------------------------------------

MARGIN = 2  # pixels around the 5x5 patch that still count as a hit


def test_pointing_game(shapes_run):
    """The strongest pixel of the map falls on the patch that decides the class (5x5, +-2 pixels of margin)."""
    trained, images, labels, centres = shapes_run
    images, labels, centres = images[:40], labels[:40], centres[:40]
    # Score-CAM points a little less well (87.5% measured): its weights come from the scores of masked images,
    # and on 8x8 feature maps a mask is coarse
    for method, share in (
        ("gradcam", 0.9),
        ("gradcam++", 0.9),
        ("scorecam", 0.85),
        ("smoothgrad", 0.9),
        ("occlusion", 0.9),
        ("input-x-gradient", 0.9),  # 100% measured
    ):
        maps = attribute(trained, images, method, target=labels)
        rows, cols = np.divmod(maps.reshape(len(maps), -1).argmax(1), maps.shape[2])
        hits = np.maximum(abs(rows - centres[:, 0]), abs(cols - centres[:, 1])) <= 2 + MARGIN
        assert hits.mean() >= share, f"{method}: {hits.mean():.0%} of maxima on the patch"


def test_pointing_game_among_distractors(hard_shapes_run):
    """The class decided by one small shape among bright distractors on varied backgrounds: SmoothGrad's and
    Grad-CAM's strongest pixel still on the deciding shape (on bench/pointing_game_hard.py's 60 images, averaging
    |gradient| gave 83%, Grad-CAM of the unrectified maps 82%)."""
    trained, images, labels, centres = hard_shapes_run
    # measured here: SmoothGrad 100%, Grad-CAM 90% (54 of 60); trained with seeds 0-5, Grad-CAM gave 90-100%.
    # Its 8x8 maps of a 32x32 image put the maximum on a 4-pixel grid, so a near miss is one unit away: 88% (one
    # image below the worst seed) keeps the test from failing on another CPU's training
    for method, share in (("smoothgrad", 0.9), ("gradcam", 0.88)):
        maps = attribute(trained, images, method, target=labels)
        rows, cols = np.divmod(maps.reshape(len(maps), -1).argmax(1), maps.shape[2])
        hits = np.maximum(abs(rows - centres[:, 0]), abs(cols - centres[:, 1])) <= 2 + MARGIN
        assert hits.mean() >= share, f"{method}: {hits.mean():.0%} of maxima on the deciding shape"


def test_sanity_check_maps_change_when_the_weights_are_randomized(shapes_run):
    """Adebayo et al. 2018: a map that survives re-initializing the weights explains the image, not the model."""
    trained, images, labels, _ = shapes_run
    images, labels = images[:30], labels[:30]
    # Grad-CAM++ only half passes: its maps of a random network still follow the image (rank correlation 0.54
    # here), as Adebayo et al. found for other methods; the help says so, and this keeps it from getting worse
    limits = {"saliency": 0.5, "gradcam": 0.5, "scorecam": 0.5, "gradcam++": 0.6, "input-x-gradient": 0.5}
    for method, limit in limits.items():
        maps = attribute(trained, images, method, target=labels)
        correlations = []
        for seed in range(3):
            torch.manual_seed(seed)
            random = create_model("lesson-cnn", **trained.record.model.args)
            random_maps = attribute(random, trained.preprocess.normalize(images), method, target=labels)
            correlations.append(np.mean([spearman(a, b) for a, b in zip(maps, random_maps)]))
        assert np.mean(correlations) < limit, f"{method}: rank correlation {np.mean(correlations):.2f}"


def test_every_attribution_method_gives_one_map_per_image(shapes_run):
    trained, images, _, _ = shapes_run
    for method in ("saliency", "integrated-gradients", "guided-gradcam"):
        maps = attribute(trained, images[:3], method)
        assert maps.shape == (3, 32, 32) and np.isfinite(maps).all() and maps.std() > 0
    predicted = targets_for(trained, trained.preprocess.normalize(images[:3]))
    assert torch.equal(predicted, trained.probabilities(images[:3]).argmax(1))
    with pytest.raises(CnnlabError, match=r"out of range: the model has 3 classes, 0 to 2 \(0=plus, 1=cross, 2="):
        attribute(trained, images[:1], "saliency", target=3)


# --- top patches, maximization, deep dream ------------------------------------------------------------------------


def test_top_patches_are_the_strongest_units_cropped_to_their_field(shapes_run):
    trained, images, _, _ = shapes_run
    top = top_patches(trained, images, "conv2", channels=4)
    assert top.index.shape == (4, 9) and (np.diff(top.value, axis=1) <= 0).all()
    maps = trained.activations(images[top.index[1]], "conv2")[:, 1]  # channel 1's nine images
    assert np.allclose(maps.reshape(9, -1).max(1), top.value[1], atol=1e-5)
    (r, c), (t, l, b, rr) = top.position[1, 0], top.box[1, 0]
    assert (t, l) == (max(0, 2 * r - 3), max(0, 2 * c - 3)) and (b, rr) == (min(32, 2 * r + 5), min(32, 2 * c + 5))
    assert top.patches[1][0].shape == (3, b - t, rr - l)


def test_maximize_drives_the_channel_up_tenfold(digit_runs):
    """The channel of the last conv layer most active on real digits, from faint noise."""
    root, runs = digit_runs
    trained = Predictor.from_run(runs["mnist-cnn"])
    from cnnlab.data import load_dataset

    digits = load_dataset("mnist", data_root=root).test.images[:100]
    layer = default_layer(trained.model)
    channel = int(trained.activations(digits, layer).mean((0, 2, 3)).argmax())
    result = maximize(trained, layer, channel)
    assert result.start_value > 0 and result.final_value >= 10 * result.start_value, result
    assert result.image.dtype == np.uint8 and result.image.shape == (1, 28, 28)


def test_deepdream_amplifies_the_layer(shapes_run):
    trained, images, _, _ = shapes_run
    dreamed = deepdream(trained, images[:2], "conv2")
    assert dreamed.shape == (2, 3, 32, 32) and dreamed.dtype == np.uint8
    energy = [(trained.activations(x, "conv2") ** 2).mean() for x in (images[:2], dreamed)]
    assert energy[1] > 2 * energy[0]


# --- the commands, end to end ------------------------------------------------------------------------------------


def save_png(path, array_chw: np.ndarray):
    Image.fromarray(array_chw.transpose(1, 2, 0).squeeze()).save(path)
    return path


def test_cli_layers_and_heat_maps(shapes_run, tmp_path, capsys):
    trained, images, _, _ = shapes_run
    code, out, _ = cli(capsys, "layers", trained.folder)
    assert code == 0 and "conv3" in out and "<- the default --layer" in out.split("conv3")[1].splitlines()[0]
    first, second = save_png(tmp_path / "a.png", images[0].numpy()), save_png(tmp_path / "b.png", images[2].numpy())
    code, out, _ = cli(
        capsys, "explain", trained.folder, first, second, "--method", "gradcam", "--save-array", tmp_path / "maps.npy"
    )
    assert code == 0 and "a.png: predicted cross" in out and "b.png: predicted plus" in out
    written = trained.folder / "explanations" / "a+b-gradcam.png"  # beside the run, named for both images
    assert f"wrote {written}" in out and written.stat().st_size > 5000 and not list(tmp_path.glob("*gradcam*"))
    assert np.load(tmp_path / "maps.npy").shape == (2, 32, 32)
    code, out, _ = cli(
        capsys,
        "explain",
        trained.folder,
        second,
        "--method",
        "smoothgrad",
        "--target",
        "cross",
        "--samples",
        8,
        "--out",
        tmp_path / "s.png",
    )
    assert code == 0 and "map for cross" in out and (tmp_path / "s.png").is_file()
    grey = tmp_path / "grey.png"
    Image.fromarray(images[0, 0].numpy()).save(grey)  # one channel for an RGB model
    code, out, _ = cli(capsys, "explain", trained.folder, grey, "--method", "occlusion", "--out", tmp_path / "o.png")
    assert code == 0 and "converted L to RGB" in out


def test_cli_filters_activations_and_deepdream(shapes_run, tmp_path, capsys):
    trained, images, _, _ = shapes_run
    code, out, _ = cli(capsys, "explain", trained.folder, "--method", "filters", "--out", tmp_path / "f.png")
    assert code == 0 and "conv1: 16 filters of 3x3x3" in out and (tmp_path / "f.png").is_file()
    image = save_png(tmp_path / "a.png", images[0].numpy())
    code, out, _ = cli(
        capsys,
        "explain",
        trained.folder,
        image,
        "--method",
        "activations",
        "--layer",
        "conv2",
        "--channels",
        8,
        "--save-array",
        tmp_path / "a.npy",
    )
    assert code == 0 and "32 channels of 16x16; the first 8 shown" in out
    assert (
        np.load(tmp_path / "a.npy").shape == (1, 32, 16, 16)
        and (trained.folder / "explanations" / "a-activations-conv2.png").is_file()
    )
    code, out, _ = cli(
        capsys,
        "explain",
        trained.folder,
        image,
        "--method",
        "deepdream",
        "--layer",
        "conv2",
        "--octaves",
        2,
        "--out",
        tmp_path / "d.png",
    )
    assert code == 0 and "mean squared activation" in out and (tmp_path / "d.png").is_file()


def test_cli_top_patches_and_maximize_on_mnist(digit_runs, tmp_path, capsys):
    root, runs = digit_runs
    code, out, _ = cli(
        capsys,
        "explain",
        runs["mnist-cnn"],
        "--method",
        "top-patches",
        "--data-root",
        root,
        "--layer",
        "features.1",
        "--channels",
        3,
        "--limit",
        100,
        "--out",
        tmp_path / "t.png",
    )
    assert code == 0 and "searched the first 100 mnist test images; receptive field 10x10 pixels" in out
    assert out.count("channel ") == 3 and (tmp_path / "t.png").is_file()
    code, out, _ = cli(
        capsys,
        "explain",
        runs["mnist-cnn"],
        "--method",
        "maximize",
        "--channel",
        0,
        "--steps",
        50,
        "--out",
        tmp_path / "m.png",
    )
    assert code == 0 and "mean activation of features.2.0 channel 0" in out and (tmp_path / "m.png").is_file()
    code, out, _ = cli(
        capsys,
        "explain",
        runs["mnist-cnn"],
        "--method",
        "maximize",
        "--target",
        3,
        "--steps",
        20,
        "--out",
        tmp_path / "c.png",
    )
    assert code == 0 and "score of class 3" in out


def test_cli_on_an_mlp(digit_runs, tmp_path, capsys):
    _, runs = digit_runs
    code, out, _ = cli(capsys, "layers", runs["mlp"])
    assert code == 0 and "fc1" in out and "Linear" in out and "no conv layer" in out
    image = save_png(tmp_path / "digit.png", np.full((1, 28, 28), 30, np.uint8))
    code, _, err = cli(capsys, "explain", runs["mlp"], image, "--method", "gradcam")
    assert code == 2 and "Grad-CAM needs a convolutional layer" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli(capsys, "explain", runs["mlp"], image, "--method", "saliency", "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file()


def test_cli_bad_input_is_one_line(shapes_run, tmp_path, capsys):
    trained, images, _, _ = shapes_run
    image = save_png(tmp_path / "a.png", images[0].numpy())
    code, _, err = cli(capsys, "explain", trained.folder, image, "--method", "gradcam", "--layer", "conv9")
    assert code == 2 and "unknown layer 'conv9'" in err and "conv1, conv2, conv3" in err
    code, _, err = cli(capsys, "explain", trained.folder, image, "--method", "saliency", "--target", 7)
    assert code == 2 and "target class 7 is out of range" in err and "0=plus, 1=cross, 2=ring" in err
    code, _, err = cli(capsys, "explain", trained.folder, image, "--method", "saliency", "--target", "dog")
    assert code == 2 and "unknown target class 'dog'" in err
    code, _, err = cli(capsys, "explain", trained.folder, "--method", "gradcam")
    assert code == 2 and "needs at least one image" in err
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "run.json").write_text((trained.folder / "run.json").read_text())
    code, _, err = cli(capsys, "layers", empty)
    assert code == 2 and "no best.safetensors" in err and len(err.strip().splitlines()) == 1


def test_gradcam_is_the_papers_formula_and_a_layer_without_maps_is_refused(shapes_run):
    """Grad-CAM written out by hand (mean gradient per channel, weighted sum of the rectified maps, ReLU, bilinear
    upsampling)."""
    trained, images, labels, _ = shapes_run
    x = trained.inputs(images[:4])
    conv3 = get_layer(trained.model, "conv3")
    kept = []
    handle = conv3.register_forward_hook(lambda _m, _i, out: kept.append(out))
    score = trained.model(x).gather(1, labels[:4].view(-1, 1)).sum()
    handle.remove()
    (grad,) = torch.autograd.grad(score, kept[0])
    cam = F.relu((grad.mean((2, 3), keepdim=True) * F.relu(kept[0])).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    maps = attribute(trained, images[:4], "gradcam", target=labels[:4])
    assert np.allclose(maps, expected.detach().numpy(), atol=1e-5)
    with pytest.raises(CnnlabError, match=r"fc1 outputs \[500\] per image"):
        attribute(trained, images[:1], "gradcam++", layer="fc1")
    # pool runs after each conv: its name means its first use (16x16 maps), as for every reader of layers
    first_pool = attribute(trained, images[:1], "scorecam", layer="pool")
    assert first_pool.shape == (1, 32, 32) and np.isfinite(first_pool).all() and first_pool.max() > 0


@pytest.mark.parametrize(
    "options, message",
    [
        (["--method", "smoothgrad", "--samples", "0"], "samples 0: must be a whole number, from 1 to 10,000"),
        (["--method", "deepdream", "--octaves", "0"], "octaves 0: must be a whole number"),
        (["--method", "occlusion", "--window", "40"], "occlusion window 40 is larger than the 32x32 image"),
        (["--method", "activations", "--channels", "-1"], "channels -1"),
    ],
)
def test_explain_refuses_values_that_make_no_sense_in_one_line(shapes_run, tmp_path, capsys, options, message):
    trained, images, _, _ = shapes_run
    image = save_png(tmp_path / "a.png", images[0].numpy())
    code, _, err = cli(capsys, "explain", trained.folder, image, *options)
    assert code == 2 and message in err and err.count("\n") == 1


def test_explain_refuses_a_zero_limit(digit_runs, capsys):
    _, runs = digit_runs
    code, _, err = cli(capsys, "explain", runs["mnist-cnn"], "--method", "top-patches", "--limit", 0)
    assert code == 2 and "limit 0: must be a whole number, from 1 to 1,000,000,000" in err
