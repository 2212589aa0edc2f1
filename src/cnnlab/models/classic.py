"""The classic ImageNet networks: AlexNet (2012), VGG (2014), ResNet (2015), plus small-image variants for CIFAR.

Module names, layer order and parameter counts match torchvision's, so its published `.pth` weights load key for
key (`cnnlab.models.weights.load_torchvision_weights`). `in_channels` changes the first conv, `num_classes` only the
last layer. The ImageNet models take any input size above a minimum: adaptive average pooling makes the feature map
the classifier expects (6x6 for AlexNet, 7x7 for VGG, 1x1 for ResNet).

The `-cifar` variants keep the same blocks and names but suit 32x32 images: ResNet-18 with a 3x3 stride-1 stem
and no max-pool, VGG-11 (with batch norm) with a single linear classifier on 512 features.
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.dropout import Dropout
from cnnlab.models.pooling import MaxPool2d
from cnnlab.models.recipe import Recipe
from cnnlab.models.registry import register

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)
# No published recipe fits every data set; these are solid starting points (SGD with Nesterov momentum, one cycle).
# fmt: off
IMAGENET_RECIPE = Recipe(epochs=30, batch_size=64, lr=0.02, optimizer="sgd", nesterov=True, weight_decay=5e-4,
                         schedule="onecycle", label_smoothing=0.1, augment="photos")
# fmt: on
# fmt: off
CIFAR_RECIPE = Recipe(epochs=20, batch_size=256, lr=0.1, optimizer="sgd", nesterov=True, weight_decay=5e-4,
                      schedule="onecycle", label_smoothing=0.1, augment="flip,crop=4")
# fmt: on
# Transfer learning from ImageNet weights (`--weights imagenet`): AdamW, few epochs, the photos augmentation.
# frozen: only the new last layer learns; finetune: every layer, the pretrained ones at a tenth of the rate.
TRANSFER_RECIPES = {
    "frozen": Recipe(epochs=5, batch_size=32, lr=3e-3, weight_decay=0.01, augment="photos", freeze="features"),
    "finetune": Recipe(epochs=5, batch_size=32, lr=1e-3, weight_decay=0.01, augment="photos", pretrained_lr_scale=0.1),
}


def init_convs(model: nn.Module) -> None:
    """He initialization, as torchvision: the default init shrinks the signal at every layer, which a deep stack of
    convs without batch norm (VGG) does not survive."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_size(name: str, image_size: int, minimum: int) -> None:
    """Too small an image shrinks to nothing before the classifier: say so instead of a shape error deep inside.

    The models suggested take MNIST's 28x28 too (vgg11_bn-cifar does not: its five poolings need 32).
    """
    if image_size < minimum:
        raise CnnlabError(
            f"{name} needs images of at least {minimum}x{minimum} pixels, got {image_size}x{image_size}; "
            "resize them (image folders: --image-size) or pick a model for small images: "
            "resnet18-cifar, lesson-cnn, mnist-cnn"
        )


# ------------------------------------------------------------------------------------------------------- AlexNet


class AlexNet(nn.Module):
    """Five convs (11x11 stride 4, 5x5, then three 3x3) with three max-pools, and three fully connected layers with
    dropout: the one-GPU version of Krizhevsky, Sutskever & Hinton (2012), as torchvision has it."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register(
    "alexnet",
    "AlexNet (torchvision layout): 5 convs, 3 fc layers with dropout",
    IMAGENET,
    {"default": IMAGENET_RECIPE.replace(lr=0.01), **TRANSFER_RECIPES},
)
def alexnet(in_channels: int, num_classes: int, image_size: int, **kw) -> AlexNet:
    check_size("alexnet", image_size, 63)
    return AlexNet(in_channels, num_classes, **kw)


# ----------------------------------------------------------------------------------------------------------- VGG

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool. Simonyan & Zisserman's configurations A, B, D and E.
VGG_LAYERS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_features(depth: int, in_channels: int, batch_norm: bool) -> nn.Sequential:
    layers, channels = [], in_channels
    for v in VGG_LAYERS[depth]:
        if v == "M":
            layers.append(MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, v, 3, padding=1))
        layers += [nn.BatchNorm2d(v)] if batch_norm else []
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Stacks of 3x3 convs between max-pools, then three fully connected layers (4096, 4096, classes).

    With `small=True` (the CIFAR variant) the 1x1x512 features go straight to one linear layer: the 4096-wide
    classifier alone would be 120M parameters for 10 classes.
    """

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        num_classes: int = 1000,
        batch_norm: bool = False,
        dropout: float = 0.5,
        small: bool = False,
    ):
        super().__init__()
        self.features = vgg_features(depth, in_channels, batch_norm)
        init_convs(self)
        if small:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Sequential(nn.Linear(512, num_classes))
            return
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def register_vgg(depth: int, batch_norm: bool) -> None:
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"

    def build(in_channels: int, num_classes: int, image_size: int, **kw) -> VGG:
        check_size(name, image_size, 32)
        return VGG(depth, in_channels, num_classes, batch_norm, **kw)

    bn = " with batch norm" if batch_norm else ""
    register(
        name,
        f"VGG-{depth}{bn} (torchvision layout): 3x3 convs, 3 fc layers with dropout",
        IMAGENET,
        {"default": IMAGENET_RECIPE.replace(lr=0.02 if batch_norm else 0.005), **TRANSFER_RECIPES},
    )(build)


for _depth in VGG_LAYERS:
    register_vgg(_depth, batch_norm=False)
    register_vgg(_depth, batch_norm=True)


@register(
    "vgg11_bn-cifar",
    "VGG-11 with batch norm for 32x32 images: one linear layer on 512 features",
    CIFAR,
    {"default": CIFAR_RECIPE.replace(lr=0.05)},
)
def vgg11_bn_cifar(in_channels: int, num_classes: int, image_size: int, **kw) -> VGG:
    check_size("vgg11_bn-cifar", image_size, 32)
    return VGG(11, in_channels, num_classes, batch_norm=True, small=True, **kw)


# -------------------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut around them: out = relu(x + F(x)). ResNet-18 and -34."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(cin, width * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 conv down to `width` channels, 3x3 conv (carrying the stride, as torchvision's "ResNet v1.5"), 1x1 conv
    up to 4 x width, and the shortcut. ResNet-50: deeper for the cost of ResNet-34."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(cin, width * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """Where a block changes the shape, the shortcut needs a 1x1 conv (and batch norm) to match it."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """A stem, four stages of residual blocks (64, 128, 256, 512 wide; each after the first halves the size), global
    average pooling and one linear layer. `small=True`: a 3x3 stride-1 stem and no max-pool, for 32x32 images."""

    # explanations default to the last stage's output (after its shortcut joined), where Grad-CAM is usually taken
    inspect_layer = "layer4"

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: list[int],
        in_channels: int = 3,
        num_classes: int = 1000,
        small: bool = False,
    ):
        super().__init__()
        if small:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small else nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for i, (width, n) in enumerate(zip([64, 128, 256, 512], blocks)):
            stage = []
            for j in range(n):
                stage.append(block(channels, width, stride=2 if i > 0 and j == 0 else 1))
                channels = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        init_convs(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


RESNETS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}


def register_resnet(depth: int) -> None:
    block, blocks = RESNETS[depth]

    def build(in_channels: int, num_classes: int, image_size: int, **kw) -> ResNet:
        return ResNet(block, blocks, in_channels, num_classes, **kw)

    register(
        f"resnet{depth}",
        f"ResNet-{depth} (torchvision layout): {block.__name__} stages {blocks}",
        IMAGENET,
        {"default": IMAGENET_RECIPE.replace(lr=0.05), **TRANSFER_RECIPES},
    )(build)


for _depth in RESNETS:
    register_resnet(_depth)


@register(
    "resnet18-cifar",
    "ResNet-18 for 32x32 images: 3x3 stride-1 stem, no max-pool (torchvision key names)",
    CIFAR,
    {"default": CIFAR_RECIPE},
)
def resnet18_cifar(in_channels: int, num_classes: int, image_size: int, **kw) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes, small=True, **kw)
