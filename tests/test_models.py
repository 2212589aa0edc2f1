"""The CNNs and classic architectures: shapes, torchvision's parameter counts and key names, and weight loading."""

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, count_parameters, create_model
from cnnlab.models.cnn import LessonCNN
from cnnlab.models.weights import load_torchvision_weights

# torchvision's parameter counts (1000 classes): equal counts and equal key names let its weights load
TORCHVISION_PARAMETERS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}
OURS = [*TORCHVISION_PARAMETERS, "lesson-cnn", "mnist-cnn", "resnet18-cifar", "vgg11_bn-cifar"]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", OURS)
def test_forward_gives_one_score_per_class(name):
    c, h, _ = MODELS[name].default_input
    size = 64 if h == 224 else h  # adaptive pooling lets the ImageNet models run on small images fast
    model = create_model(name, num_classes=7, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, c, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", TORCHVISION_PARAMETERS)
def test_parameter_counts_equal_torchvision(name):
    with torch.device("meta"):  # counts shapes without allocating 140M parameters
        model = create_model(name, num_classes=1000)
    assert count_parameters(model) == TORCHVISION_PARAMETERS[name]


def test_lesson_cnn_is_the_lesson_network_and_adapts_to_the_input():
    model = create_model("lesson-cnn")
    assert count_parameters(model) == 541_094  # conv 448 + 4,640 + 18,496, fc 1024*500+500, 500*10+10
    assert model.fc1.in_features == 1024 and [
        model.conv1.out_channels,
        model.conv2.out_channels,
        model.conv3.out_channels,
    ] == [16, 32, 64]
    fashion = create_model("lesson-cnn", in_channels=1, image_size=28)
    assert fashion.conv1.in_channels == 1 and fashion.fc1.in_features == 64 * 3 * 3  # 28 -> 14 -> 7 -> 3
    assert fashion(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert LessonCNN(3, 5, 64).fc1.in_features == 64 * 8 * 8


def test_lesson_cnn_computes_what_the_lesson_wrote():
    """It pools before the ReLU (cheaper); the lesson wrote pool(relu(conv(x))): outputs and gradients agree."""
    import torch.nn.functional as F

    model = create_model("lesson-cnn").eval()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)

    def lesson(x):
        for conv in (model.conv1, model.conv2, model.conv3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return model.fc2(F.relu(model.fc1(x.flatten(1))))

    ours = model(x)
    (grad_ours,) = torch.autograd.grad(ours.sum(), x)
    theirs = lesson(x)
    (grad_theirs,) = torch.autograd.grad(theirs.sum(), x)
    assert torch.equal(ours, theirs) and torch.allclose(grad_ours, grad_theirs, atol=1e-6)


def test_num_classes_changes_only_the_last_layer():
    ten, thousand = (create_model("resnet18", num_classes=n).state_dict() for n in (10, 1000))
    differ = {k for k in ten if ten[k].shape != thousand[k].shape}
    assert differ == {"fc.weight", "fc.bias"}
    gray = create_model("vgg11", in_channels=1, num_classes=10, image_size=32)
    assert gray.features[0].in_channels == 1 and gray(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_key_names_are_torchvisions():
    keys = {
        "resnet18": [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer1.1.bn2.bias",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_mean",
            "layer4.1.conv2.weight",
            "fc.weight",
            "fc.bias",
        ],
        "resnet50": [
            "layer1.0.conv3.weight",
            "layer1.0.bn3.weight",
            "layer1.0.downsample.0.weight",
            "layer3.5.conv2.weight",
            "fc.weight",
        ],
        "alexnet": [
            "features.0.weight",
            "features.3.weight",
            "features.10.bias",
            "classifier.1.weight",
            "classifier.4.weight",
            "classifier.6.weight",
        ],
        "vgg16": [
            "features.0.weight",
            "features.28.weight",
            "classifier.0.weight",
            "classifier.3.weight",
            "classifier.6.bias",
        ],
        "vgg16_bn": ["features.1.running_mean", "features.41.weight", "classifier.6.weight"],
        "resnet18-cifar": ["conv1.weight", "layer2.0.downsample.0.weight", "fc.weight"],
    }
    for name, expected in keys.items():
        with torch.device("meta"):
            state = create_model(name).state_dict()
        assert set(expected) <= set(state), (name, set(expected) - set(state))
    with torch.device("meta"):
        resnet18 = create_model("resnet18").state_dict()
    assert not any(k.startswith("layer1.0.downsample") for k in resnet18)  # no shortcut conv where shapes match
    assert resnet18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert len([k for k in resnet18 if k.endswith("num_batches_tracked")]) == 20


def test_cifar_resnet_keeps_the_resolution_in_the_stem():
    model = create_model("resnet18-cifar")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.layer1(model.maxpool(model.conv1(torch.randn(1, 3, 32, 32)))).shape == (1, 64, 32, 32)


def test_too_small_images_are_a_clear_error():
    with pytest.raises(CnnlabError, match="alexnet needs images of at least 63x63") as error:
        create_model("alexnet", image_size=32)
    suggested = str(error.value).rsplit(": ", 1)[1].split(", ")
    assert len(suggested) == 3
    for name in suggested:  # each suggestion takes MNIST's 28x28 digits
        assert create_model(name, in_channels=1, image_size=28)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def _randomize(model):
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.normal_()
    return model


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_torchvision_state_dict_round_trip(tmp_path):
    source = _randomize(create_model("resnet18", num_classes=1000))
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    target = create_model("resnet18", num_classes=1000)
    assert not _same(source, target)
    assert "loaded 122 tensors" in load_torchvision_weights(target, tmp_path / "resnet18.pth")
    assert _same(source, target)


def test_wrapped_prefixed_and_old_state_dicts_load(tmp_path):
    source = _randomize(create_model("mnist-cnn"))
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pth")
    target = create_model("mnist-cnn")
    load_torchvision_weights(target, tmp_path / "wrapped.pth")
    assert all(torch.equal(v, target.state_dict()[k.removeprefix("module.")]) for k, v in state.items())


def test_imagenet_weights_fine_tune_into_fewer_classes(tmp_path):
    source = _randomize(create_model("alexnet", num_classes=1000))
    torch.save(source.state_dict(), tmp_path / "alexnet.pth")
    target = create_model("alexnet", num_classes=10)
    head = target.classifier[6].weight.clone()
    message = load_torchvision_weights(target, tmp_path / "alexnet.pth")
    assert "except the last layer 'classifier.6'" in message and "1000 classes in the file, 10" in message
    assert torch.equal(target.features[0].weight, source.features[0].weight)
    assert torch.equal(target.classifier[4].weight, source.classifier[4].weight)
    assert torch.equal(target.classifier[6].weight, head)


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(create_model("resnet18-cifar").state_dict(), tmp_path / "r.pth")
    expected = r"17 missing keys \(features.0.0.weight.*; 122 unexpected keys \(conv1.weight"
    with pytest.raises(CnnlabError, match=expected):
        load_torchvision_weights(create_model("mnist-cnn"), tmp_path / "r.pth")
    with pytest.raises(CnnlabError, match=r"shapes differ for conv1.weight \(64, 3, 3, 3\)"):
        load_torchvision_weights(create_model("resnet18-cifar", in_channels=1), tmp_path / "r.pth")


def test_corrupt_or_foreign_files_are_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file at all")
    model = create_model("mnist-cnn")
    with pytest.raises(CnnlabError, match="corrupt.pth: cannot read it"):
        load_torchvision_weights(model, corrupt)
    with pytest.raises(CnnlabError, match=r"weights.txt: expected a PyTorch \.pth"):
        load_torchvision_weights(model, tmp_path / "weights.txt")
    with pytest.raises(CnnlabError, match="missing.pth: no such file"):
        load_torchvision_weights(model, tmp_path / "missing.pth")
    torch.save({"epoch": 3}, tmp_path / "no-weights.pth")
    with pytest.raises(CnnlabError, match="holds no state_dict"):
        load_torchvision_weights(model, tmp_path / "no-weights.pth")


class Payload:
    """Stands for a malicious pickle: anything but tensors must be refused, not unpickled."""


def test_loading_never_unpickles_objects(tmp_path):
    torch.save({"fc.weight": torch.zeros(1), "evil": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CnnlabError, match="evil.pth: cannot read it"):
        load_torchvision_weights(create_model("mnist-cnn"), tmp_path / "evil.pth")


def test_every_model_here_has_a_default_recipe():
    for name in OURS:
        assert "default" in MODELS[name].recipes
    assert MODELS["lesson-cnn"].recipes["lesson"].batch_size == 20


def test_a_data_set_with_its_own_recipe_gets_it_unless_another_is_named():
    spec = MODELS["lesson-cnn"]
    assert spec.recipe(None, "fashion-mnist") is spec.recipes["fashion-mnist"] != spec.recipes["default"]
    assert spec.recipe(None, "cifar10") is spec.recipes["default"]
    assert spec.recipe("lesson", "fashion-mnist") is spec.recipes["lesson"]
    with pytest.raises(CnnlabError, match="lesson-cnn has no recipe 'turbo'; it has: default, fashion-mnist"):
        spec.recipe("turbo")
