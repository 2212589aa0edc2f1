"""The lesson's multi-layer perceptron: flatten, 512, 512, classes; ReLU and dropout 0.2 between."""

from torch import nn

from cnnlab.models.dropout import Dropout
from cnnlab.models.recipe import Recipe
from cnnlab.models.registry import register


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int = 10, hidden: int = 512, dropout: float = 0.2):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)
        self.dropout = Dropout(dropout)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = x.flatten(1)
        x = self.dropout(self.relu(self.fc1(x)))
        x = self.dropout(self.relu(self.fc2(x)))
        return self.fc3(x)


# batch 512 at lr 3e-3: the same 10 epochs in half the time of batch 128 (the step is mostly fixed costs on a CPU)
# fmt: off
MLP_MNIST = Recipe(epochs=10, batch_size=512, lr=3e-3, optimizer="adamw", weight_decay=0.0, schedule="onecycle",
                   warmup=0.1, augment="crop=2")
# the course notebook's, for MLP and CNN alike: plain SGD, lr 0.01, batch 20, 50 epochs
LESSON_MNIST = Recipe(epochs=50, batch_size=20, lr=0.01, optimizer="sgd", momentum=0.0, schedule="constant")
# fmt: on


@register(
    "mlp",
    "the lesson's MLP: 784-512-512-10, ReLU, dropout 0.2",
    default_input=(1, 28, 28),
    recipes={
        # random 2-pixel shifts (batched on the device) keep it from memorizing the training digits
        "default": MLP_MNIST,
        # clothes are centred, not shifted digits: flips instead of shifts, and longer
        "fashion-mnist": MLP_MNIST.replace(epochs=40, label_smoothing=0.1, augment="flip", lookahead=True),
        "lesson": LESSON_MNIST,
    },
)
def mlp(in_channels: int, num_classes: int, image_size: int, **kw) -> MLP:
    return MLP(in_channels * image_size * image_size, num_classes, **kw)
