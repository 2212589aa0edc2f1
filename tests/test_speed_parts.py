"""The faster parts of the training step do what the slower ones they replace did: cnnlab's dropout drops each
value independently with probability p, and the fused optimizer step is torch's update, rounded differently."""
import pytest
import torch
from torch import nn

from cnnlab.models import Recipe, create_model
from cnnlab.models.dropout import Dropout
from cnnlab.training.loop import make_optimizer, set_lr


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_drops_each_value_independently_with_probability_p(p):
    torch.manual_seed(0)
    layer = Dropout(p).train()
    out = layer(torch.ones(1000, 1001))           # an odd count: the last 64-bit draw is cut short
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
    assert torch.equal(layer(x), out)                 # the global seed decides the mask: resumable runs repeat it
    assert not torch.equal(layer(x), out)
    assert isinstance(layer, nn.Dropout) and layer.p == 0.3


def test_the_lessons_networks_use_it():
    for name in ("mlp", "lesson-cnn"):
        assert any(type(m) is Dropout for m in create_model(name).modules()), name


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_fused_step_is_torchs_update(optimizer):
    recipe = Recipe(epochs=1, batch_size=8, lr=0.05, optimizer=optimizer, nesterov=optimizer == "sgd",
                    weight_decay=5e-4, bias_lr_scale=4.0)
    torch.manual_seed(0)
    fused_model, plain_model = create_model("mnist-cnn"), create_model("mnist-cnn")
    plain_model.load_state_dict(fused_model.state_dict())
    start = [p.detach().clone() for p in fused_model.parameters()]
    fused = make_optimizer(recipe, fused_model)
    assert all(group["fused"] for group in fused.param_groups)
    twin = {id(p): q for p, q in zip(fused_model.parameters(), plain_model.parameters())}
    # the same groups and settings over the twin model's parameters, stepped as torch does by default
    plain = type(fused)([{**{k: v for k, v in group.items() if k != "fused"},
                          "params": [twin[id(p)] for p in group["params"]]} for group in fused.param_groups])
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(3):
        for model, opt in ((fused_model, fused), (plain_model, plain)):
            set_lr(opt, recipe.lr)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), plain_model.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert all(not torch.allclose(a, b) for a, b in zip(start, fused_model.parameters()))      # it did move
