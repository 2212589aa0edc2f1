"""The faster parts of the training step do what the slower ones they replace did: cnnlab's dropout drops each
value independently with probability p, its max-pool gives torch's values, and the fused optimizer step is torch's
update, rounded differently."""

import pytest
import torch
from torch import nn

from cnnlab.models import Recipe, create_model
from cnnlab.models.dropout import Dropout
from cnnlab.models.pooling import MaxPool2d
from cnnlab.training.optimizer import make_optimizer, set_lr


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_drops_each_value_independently_with_probability_p(p):
    torch.manual_seed(0)
    layer = Dropout(p).train()
    out = layer(torch.ones(1000, 1001))  # an odd count: the last 64-bit draw is cut short
    kept = out != 0
    n = kept.numel()
    assert torch.allclose(out[kept], torch.tensor(1 / (1 - p)))
    bound = 4 * (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean() - (1 - p)) < bound
    # each of the four 16-bit numbers cut from one draw, and neighbours: independent, not merely right on average
    lanes = kept.flatten()[: n - n % 4].view(-1, 4).float()
    assert ((lanes.mean(0) - (1 - p)).abs() < 2 * bound).all()
    both = (lanes[:, 0] * lanes[:, 1]).mean()
    assert abs(both - (1 - p) ** 2) < 2 * bound


def test_dropout_is_nothing_in_eval_mode_and_its_gradient_is_its_mask():
    layer = Dropout(0.3)
    x = torch.randn(64, 50, requires_grad=True)
    assert torch.equal(layer.eval()(x), x)
    torch.manual_seed(1)
    out = layer.train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float() / 0.7)
    torch.manual_seed(1)
    assert torch.equal(layer(x), out)  # the global seed decides the mask: resumable runs repeat it
    assert not torch.equal(layer(x), out)
    assert isinstance(layer, nn.Dropout) and layer.p == 0.3


def test_the_lessons_networks_use_it():
    for name in ("mlp", "lesson-cnn"):
        assert any(type(m) is Dropout for m in create_model(name).modules()), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 8, 16, 16), (3, 5, 7, 9), (6, 15, 14)])  # odd sides; one image, no batch
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_without_gradient_gives_torchs_values_by_its_own_path(dtype, shape, channels_last, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype).round(decimals=1)  # rounded: many ties between the four of a window
    x.view(-1)[::37] = float("nan")  # a NaN wins its window, as in torch's pooling
    x.view(-1)[::11] = -float("inf")
    channels_last = channels_last and x.ndim == 4
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = nn.functional.max_pool2d(x, 2, 2)
    monkeypatch.setattr(nn.MaxPool2d, "forward", lambda *_: pytest.fail("torch's pooling was used"))
    with torch.no_grad():
        out = MaxPool2d(2, 2)(x)
    assert torch.equal(out.isnan(), expected.isnan()) and expected.isnan().any()
    assert torch.equal(out.nan_to_num(), expected.nan_to_num())
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_max_pool_with_gradient_or_another_window_is_torchs():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    MaxPool2d(2).eval()(x).square().sum().backward()  # eval mode, but a gradient is wanted: torch's pooling
    mine = x.grad.clone()
    x.grad = None
    nn.functional.max_pool2d(x, 2).square().sum().backward()
    assert torch.equal(mine, x.grad)
    with torch.no_grad():
        for args in ((3, 2), (2, 1), (2, 2, 1)):  # windows that overlap, or a padded one: torch's pooling
            assert torch.equal(MaxPool2d(*args)(x), nn.functional.max_pool2d(x, *args)), args
        assert torch.equal(MaxPool2d(2, ceil_mode=True)(x), nn.functional.max_pool2d(x, 2, ceil_mode=True))
    assert all(type(m) is MaxPool2d for m in create_model("lesson-cnn").modules() if isinstance(m, nn.MaxPool2d))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_fused_step_is_torchs_update(optimizer):
    recipe = Recipe(
        epochs=1,
        batch_size=8,
        lr=0.05,
        optimizer=optimizer,
        nesterov=optimizer == "sgd",
        weight_decay=5e-4,
        bias_lr_scale=4.0,
    )
    torch.manual_seed(0)
    fused_model, plain_model = create_model("mnist-cnn"), create_model("mnist-cnn")
    plain_model.load_state_dict(fused_model.state_dict())
    start = [p.detach().clone() for p in fused_model.parameters()]
    fused = make_optimizer(recipe, fused_model)
    assert all(group["fused"] for group in fused.param_groups)
    twin = {id(p): q for p, q in zip(fused_model.parameters(), plain_model.parameters())}
    # the same groups and settings over the twin model's parameters, stepped as torch does by default
    plain = type(fused)(
        [
            {**{k: v for k, v in group.items() if k != "fused"}, "params": [twin[id(p)] for p in group["params"]]}
            for group in fused.param_groups
        ]
    )
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(3):
        for model, opt in ((fused_model, fused), (plain_model, plain)):
            set_lr(opt, recipe.lr)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), plain_model.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert all(not torch.allclose(a, b) for a, b in zip(start, fused_model.parameters()))  # it did move
