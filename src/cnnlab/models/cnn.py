"""Small convolutional networks: the lesson's CIFAR-10 CNN, and a fast MNIST CNN for the "MLPs vs CNNs" comparison."""

import torch.nn.functional as F
from torch import nn

from cnnlab.models.dropout import Dropout
from cnnlab.models.mlp import LESSON_MNIST
from cnnlab.models.pooling import MaxPool2d
from cnnlab.models.recipe import Recipe
from cnnlab.models.registry import register


class LessonCNN(nn.Module):
    """The lesson's CIFAR-10 network, layer for layer: three conv 3x3 + ReLU + 2x2 max-pool blocks (16, 32, 64
    channels), then dropout 0.25, fc 500 + ReLU, dropout, fc to the classes.

    Only fc1's input depends on the image size: each pool halves it, rounding down (28 -> 14 -> 7 -> 3).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, dropout: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = MaxPool2d(2, 2)
        side = image_size // 2 // 2 // 2
        self.fc1 = nn.Linear(64 * side * side, 500)
        self.fc2 = nn.Linear(500, num_classes)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        # relu(pool(x)) == pool(relu(x)) exactly (both are monotone), and pooling first leaves ReLU a quarter
        # of the pixels: the lesson's network, computed faster
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = F.relu(self.pool(self.conv3(x)))
        x = self.dropout(x.flatten(1))
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)


def block(cin: int, cout: int, kernel: int = 3, stride: int = 1, pool: bool = False) -> nn.Sequential:
    """conv (no bias: batch norm brings one) -> [2x2 max-pool] -> batch norm -> ReLU.

    Pooling right after the conv leaves the batch norm and ReLU a quarter of the pixels to work on, for the same
    kind of features: these cheap-looking layers are memory-bound, and on a CPU this trained MnistCNN 1.7x faster.
    """
    layers = [nn.Conv2d(cin, cout, kernel, stride, padding=1, bias=False)]
    layers += [MaxPool2d(2)] if pool else []
    return nn.Sequential(*layers, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MnistCNN(nn.Module):
    """A small CNN for 28x28 digits, built for time to accuracy on a CPU: 94k parameters, 7.3M multiply-adds.

    A 4x4 stride-2 stem goes straight to 14x14, a pooled block to 7x7, and a last block whose strongest response
    anywhere in the image (global max-pool) feeds the classifier.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            block(in_channels, width, kernel=4, stride=2),  # 28 -> 14
            block(width, 2 * width, pool=True),  # 14 -> 7
            block(2 * width, 4 * width),
            nn.AdaptiveMaxPool2d(1),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


# The lesson network's recipes share this base; a short run wants little augmentation (shifts pay after ~18 epochs).
# fmt: off
LESSON_CNN_BASE = Recipe(epochs=10, batch_size=128, lr=0.05, optimizer="sgd", momentum=0.9, nesterov=True,
                         weight_decay=5e-4, schedule="onecycle", warmup=0.1, label_smoothing=0.05, augment="flip")
# fmt: on
# For the lesson's 76% soonest, dropout at rate 0: a run this short has no time to overfit (docs/results.md).
LESSON_CNN_SHORT = LESSON_CNN_BASE.replace(epochs=7, lr=0.08, dropout=0.0)


@register(
    "lesson-cnn",
    "the lesson's CIFAR-10 CNN: conv 16-32-64 + max-pool, dropout 0.25, fc 500",
    default_input=(3, 32, 32),
    recipes={
        "default": LESSON_CNN_SHORT,
        # Fashion-MNIST's 28x28 clothes want longer, and no label smoothing
        "fashion-mnist": LESSON_CNN_BASE.replace(epochs=15, warmup=0.2, label_smoothing=0.0),
        # longer pays once the images are shifted too: above 80% on CIFAR-10
        "best": LESSON_CNN_BASE.replace(epochs=40, augment="flip,crop=4"),
        "lesson": Recipe(
            epochs=30,
            batch_size=20,
            lr=0.01,
            optimizer="sgd",
            momentum=0.0,
            schedule="constant",
            augment="flip,rotate=10",
        ),
    },
)
def lesson_cnn(in_channels: int, num_classes: int, image_size: int, **kw) -> LessonCNN:
    return LessonCNN(in_channels, num_classes, image_size, **kw)


# fmt: off
MNIST_CNN_QUICK = Recipe(epochs=4, batch_size=256, lr=4e-3, optimizer="adamw", weight_decay=5e-4, schedule="onecycle",
                         label_smoothing=0.1, augment="crop=1")
# fmt: on


@register(
    "mnist-cnn",
    "a small fast CNN for digits: conv 32-64-128 with batch norm, stride-2 stem, global max-pool",
    default_input=(1, 28, 28),
    recipes={
        # for 99.6%: small rotations and 2-pixel shifts keep a 20-epoch run from memorizing; Lookahead steadies it
        "default": MNIST_CNN_QUICK.replace(epochs=20, augment="rotate=8,crop=2", lookahead=True),
        # for a first comparison with the MLP: about half a minute on a CPU
        "quick": MNIST_CNN_QUICK,
        "lesson": LESSON_MNIST,  # the MLP's, so that the two compare like for like
    },
)
def mnist_cnn(in_channels: int, num_classes: int, image_size: int, **kw) -> MnistCNN:
    return MnistCNN(in_channels, num_classes, **kw)
