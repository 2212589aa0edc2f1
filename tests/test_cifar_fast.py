"""cifar-fast: its whitening layer is set from the data and stays frozen, its eval prediction averages the mirror
image, biases learn at their own rate, and a run of it trains and resumes like any other."""

import json

import pytest
import torch

from cnnlab.models import Recipe, create_model, get_spec
from cnnlab.training.checkpoint import read_state
from cnnlab.training.config import RunConfig
from cnnlab.training.loop import train
from cnnlab.training.optimizer import Lookahead, make_optimizer, set_lr

TINY = {"widths": [8, 16, 16]}  # the real widths' structure, small enough for a test


def correlated_images(n=64, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated, as in photos."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.randn(n, 1, 36, 36, generator=g), 5, 1)  # smooth: 32x32
    return 10 * base.repeat(1, 3, 1, 1) + torch.randn(n, 3, 32, 32, generator=g)


def test_the_first_layer_whitens_2x2_patches_of_the_training_images():
    model = create_model("cifar-fast", **TINY)
    images = correlated_images()
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    spread = torch.linalg.eigvalsh(patches.T @ patches / len(patches))
    assert spread.max() / spread.min() > 20  # far from white before
    model.initialize_from(images)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, model.whiten.weight)  # without the bias
    first, second = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12), out[:, 12:].permute(0, 2, 3, 1).reshape(-1, 12)
    assert torch.allclose(first.T @ first / len(first), torch.eye(12), atol=0.02)  # white: identity covariance
    assert torch.equal(second, -first)  # and each direction's negative
    assert not model.whiten.weight.requires_grad


def test_every_conv_starts_by_passing_its_inputs_through():
    model = create_model("cifar-fast", **TINY)
    for group in model.groups:
        for conv in (group[0], group[4]):
            x = torch.randn(2, conv.in_channels, 8, 8)
            with torch.no_grad():
                out = conv(x)
            n = min(conv.in_channels, conv.out_channels)
            assert torch.allclose(out[:, :n], x[:, :n], atol=1e-5)  # the first outputs: the first inputs
            assert out[:, n:].abs().sum() > 0 or n == conv.out_channels  # any others: random filters


def test_in_eval_mode_an_image_and_its_mirror_get_the_same_scores():
    model = create_model("cifar-fast", **TINY)
    model.initialize_from(correlated_images())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(model(x), model(x.flip(3)), atol=1e-5)
        model.mirror = False
        one_view = (model(x) + model(x.flip(3))) / 2
        model.mirror = True
        assert torch.allclose(model(x), one_view, atol=1e-6)
        model.train()  # training sees one view: the augmentation does the mirroring
        assert not torch.allclose(model(x), model(x.flip(3)), atol=1e-3)


def test_biases_and_norm_shifts_learn_at_the_recipes_scale():
    model = create_model("cifar-fast", **TINY)
    optimizer = make_optimizer(get_spec("cifar-fast").recipe().replace(bias_lr_scale=64.0), model)
    set_lr(optimizer, 0.5)
    weights, biases = optimizer.param_groups
    assert (weights["lr"], biases["lr"]) == (0.5, 32.0)
    assert weights["weight_decay"] > 0 == biases["weight_decay"]
    assert all(p.ndim == 1 for p in biases["params"])
    assert any(p is model.groups[0][2].bias for p in biases["params"])
    with pytest.raises(Exception, match="bias learning-rate scale"):
        Recipe(epochs=1, batch_size=8, lr=0.1, bias_lr_scale=0)


def test_lookahead_pulls_the_weights_back_toward_their_slow_copy_every_few_steps():
    layer = torch.nn.Linear(2, 2)
    lookahead = Lookahead(layer, every=5)
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    lookahead.step(3, 10, epoch_ends=False)  # not a fifth step: nothing happens
    assert torch.equal(layer.weight, start + 1)
    lookahead.step(5, 10, epoch_ends=False)  # halfway: keep 0.95^5 * 0.5^3 of the slow weights
    keep = 0.95**5 * 0.5**3
    assert torch.allclose(layer.weight, start + (1 - keep))
    assert torch.equal(lookahead.slow[0], layer.weight)
    with torch.no_grad():
        layer.weight.add_(1.0)
    lookahead.step(7, 10, epoch_ends=True)  # an epoch's last step always updates: nothing left over
    assert torch.equal(lookahead.slow[0], layer.weight)
    assert get_spec("cifar-fast").recipe().lookahead


def config(root):
    recipe = get_spec("cifar-fast").recipe().replace(epochs=6, batch_size=32)
    return RunConfig("cifar-fast", "cifar10", recipe, data_root=str(root), precision="fp32", model_args=TINY)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CIFAR-10 and a finished cifar-fast run on it, in runs/whole."""
    from conftest import make_cifar

    base = tmp_path_factory.mktemp("cifar-fast")
    root = make_cifar(base / "data", per_batch=60)
    run = train(config(root), base / "runs" / "whole", progress=False, log=lambda s: None)
    return root, base / "runs", run


def test_a_run_learns_and_keeps_the_whitening_it_was_given(trained):
    _, runs, run = trained
    assert json.loads((runs / "whole" / "run.json").read_text())["test"]["accuracy"] > 0.3  # chance is 0.1
    saved = read_state(runs / "whole" / "best.safetensors")["whiten.weight"]
    assert not torch.allclose(saved, create_model("cifar-fast", **TINY).whiten.weight)  # set from the data...
    fresh = create_model("cifar-fast", **TINY)
    sample = run.train_set.subset(torch.arange(min(5000, len(run.train_set))))
    fresh.initialize_from(next(iter(run.batches(sample, batch_size=len(sample.labels))))[0])
    assert torch.equal(saved, fresh.whiten.weight)  # ...and never trained


def test_an_interrupted_run_resumes_to_the_same_weights(trained, tmp_path):
    root, _, whole = trained

    def interrupt_after_one(epoch, run):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(root), tmp_path / "cut", progress=False, on_epoch_end=interrupt_after_one, log=lambda s: None)
    resumed = train(config(root), tmp_path / "cut", resume=True, progress=False, log=lambda s: None)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_grad_cam_sees_both_views_lined_up_with_the_image(trained):
    """Grad-CAM reads the maps of the image and of its mirror flipped back: the map of a mirrored image is the
    mirrored map, and the explorer answers with it like for any other run."""
    from fastapi.testclient import TestClient

    from cnnlab.inspect import attribute
    from cnnlab.predict import Predictor
    from cnnlab.serve import create_app

    _, runs, run = trained
    predictor = Predictor.from_run(runs / "whole")
    pixels = run.data.test.pixels(slice(0, 4))
    cams = attribute(predictor, pixels, "gradcam", target=torch.arange(4))
    mirrored = attribute(predictor, pixels.flip(3), "gradcam", target=torch.arange(4))
    assert cams.shape == (4, 32, 32) and cams.max() > 0
    assert abs(mirrored - cams[:, :, ::-1]).max() < 0.05 * abs(cams).max()
    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    random = client.get("/api/explore/random", params={"run": "whole", "index": 0}).json()
    look = client.post("/api/explore/look", json={"run": "whole", "image": random["image"]})
    assert look.status_code == 200, look.text
    assert abs(sum(look.json()["scores"]) - 1) < 1e-4
    cam = client.post(
        "/api/explore/attribution", json={"run": "whole", "image": random["image"], "target": 3, "method": "gradcam"}
    )
    assert cam.status_code == 200, cam.text
