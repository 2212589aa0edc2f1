"""`cnnlab.models.capture`: one rule for a module the forward pass uses twice, followed by every reader of layers,
and no hook left behind."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.attributions import attribute
from cnnlab.inspect.receptive import gradient_box, receptive_field
from cnnlab.models.capture import Capture, copied
from cnnlab.models.contract import check_forward
from cnnlab.models.layers import every_layer_output, layer_output, layer_table, trace
from cnnlab.models.summary import layer_rows
from cnnlab.predict import Predictor
from cnnlab.serve.explore import layer_input_output


class Twice(nn.Module):
    """One conv `block` and one ReLU applied twice: at 8x8, then after a pool at 4x4, so each use has its own
    shape."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = self.relu(self.stem(x))
        x = self.relu(self.block(x))
        x = self.relu(self.block(self.pool(x)))
        return self.fc(x.flatten(1))


@pytest.fixture
def twice():
    torch.manual_seed(0)
    return Twice().eval(), torch.randn(2, 1, 8, 8)


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_every_call_is_kept_in_order_and_first_last_pick_one(twice):
    model, x = twice
    with Capture(model) as capture:
        model(x)
    assert [c.name for c in capture.calls] == ["stem", "relu", "block", "relu", "pool", "block", "relu", "fc"]
    assert [c.use for c in capture.of("relu")] == [0, 1, 2]
    assert capture.first("block").output.shape == (2, 4, 8, 8)
    assert capture.last(model.block).output.shape == (2, 4, 4, 4)
    assert capture.first("stem").entered < capture.first("block").entered
    with Capture(model, ["block"]) as capture:  # uses are counted per forward pass
        model(x)
        model(x)
    assert [(c.forward, c.use) for c in capture.calls] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_hooks_are_gone_after_the_block_also_after_an_error(twice):
    model, x = twice
    with Capture(model, inputs=True):
        assert not no_hooks(model)
    assert no_hooks(model)
    with pytest.raises(ValueError, match="inside"), Capture(model):
        model(x)
        raise ValueError("inside the block")
    assert no_hooks(model)
    capture = Capture(model, inputs=True)
    with pytest.raises(RuntimeError), capture:
        model(torch.randn(2, 3, 8, 8))  # three channels: stem takes one
    assert no_hooks(model)
    assert [c.name for c in capture.running] == ["stem"] and capture.running[0].input.shape == (2, 3, 8, 8)


def test_stop_after_ends_the_pass_at_the_first_use(twice):
    model, x = twice
    with Capture(model, stop_after=model.block) as capture:
        model(x)
    assert [c.name for c in capture.calls] == ["stem", "relu", "block"]
    assert no_hooks(model)
    with Capture(model, stop_after=[model.pool, model.stem]) as capture:  # several: once each has run
        model(x)
    assert [c.name for c in capture.calls] == ["stem", "relu", "block", "relu", "pool"]


def test_backward_gives_the_gradient_into_each_use_and_leaves_parameters_alone(twice):
    model, x = twice
    with Capture(model, ["block"]) as capture:
        score = model(x)[:, 1].sum()
    capture.backward(score)
    first, second = capture.of("block")
    by_hand = [model.block(F.relu(model.stem(x)))]  # the same forward pass, written out
    by_hand.append(model.block(model.pool(F.relu(by_hand[0]))))
    expected = torch.autograd.grad(model.fc(F.relu(by_hand[1]).flatten(1))[:, 1].sum(), by_hand)
    assert torch.allclose(first.grad, expected[0]) and torch.allclose(second.grad, expected[1])
    assert first.grad.shape == (2, 4, 8, 8) and all(p.grad is None for p in model.parameters())


def test_a_copy_keeps_the_values_an_inplace_op_overwrites():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True))
    x = torch.randn(1, 1, 6, 6)
    with torch.no_grad(), Capture(model, ["0"]) as held, Capture(model, ["0"], keep=copied) as kept:
        model(x)
    assert (held.first("0").output >= 0).all()  # the ReLU rectified the held tensor itself
    assert (kept.first("0").output < 0).any() and torch.allclose(kept.first("0").output, model[0](x))


def test_every_reader_takes_the_first_use_of_a_layer_name(twice):
    model, x = twice
    first = model.block(F.relu(model.stem(x)))  # block's first use, by hand
    assert torch.allclose(layer_output(model, x, model.block), first)
    assert torch.allclose(torch.from_numpy(Predictor(model).activations(x, "block")), first.detach())
    seen, given = layer_input_output(model, model.block, x)
    assert seen.shape == (2, 4, 8, 8) and torch.allclose(given, first.detach())
    block = next(row for row in layer_table(model, (1, 8, 8)) if row.name == "block")
    assert block.output_shape == (4, 8, 8) and block.calls == 2
    assert receptive_field(model, model.block, (1, 8, 8)).size == (5, 5)  # two 3x3 convs, not three
    assert gradient_box(model, model.block, (1, 8, 8), 0, 0, 0) == (0, 0, 3, 3)

    # Grad-CAM, written out, on the first use
    target = torch.tensor([2, 2])
    score = model.fc(F.relu(model.block(model.pool(F.relu(first)))).flatten(1))[:, 2].sum()
    (grad,) = torch.autograd.grad(score, first)
    cam = F.relu((grad.mean((2, 3), keepdim=True) * F.relu(first)).sum(1))
    maps = attribute(model, x, "gradcam", target=target, layer="block")
    assert torch.allclose(torch.from_numpy(maps), cam.detach(), atol=1e-6)
    assert attribute(model, x, "scorecam", target=target, layer="block").shape == (2, 8, 8)


def test_readers_of_every_call_give_a_row_per_use(twice):
    model, x = twice
    assert [c.output_shape for c in trace(model, (1, 8, 8)) if c.name == "block"] == [(1, 4, 8, 8), (1, 4, 4, 4)]
    assert [r.output_shape for r in layer_rows(model, (1, 8, 8)) if r.name == "block"] == [(4, 8, 8), (4, 4, 4)]
    with every_layer_output(model) as outputs:
        model(x)
    assert [n for n, _, _ in outputs] == ["stem", "relu", "block", "relu", "pool", "block", "relu", "fc"]
    assert [tuple(y.shape) for n, _, y in outputs if n == "block"] == [(2, 4, 8, 8), (2, 4, 4, 4)]
    assert no_hooks(model)


def test_unused_layers_and_failing_forwards_are_named(twice):
    model, x = twice
    model.spare = nn.Conv2d(4, 4, 1)
    with pytest.raises(CnnlabError, match="the layer spare \\(Conv2d\\) is not used by the model's forward pass"):
        layer_output(model, x, model.spare)
    with pytest.raises(CnnlabError, match="layer 'stem' \\(Conv2d\\) got input \\[3, 8, 8\\] per image"):
        check_forward(model, (3, 8, 8), 3, "cifar10")
    assert no_hooks(model)
