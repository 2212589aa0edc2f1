import pytest
import torch

from cnnlab.models import count_parameters, create_model, get_spec
from cnnlab.models.capsnet import CapsNet, margin_loss, route, squash


def tiny() -> CapsNet:
    """A CapsNet small enough to train in seconds: 20x20 images (17 is the least two 9x9 convolutions allow),
    2 classes, 32 channels, 8x2x2 primary capsules, 8-D digit capsules; normalization for `bars`."""
    torch.manual_seed(0)
    return CapsNet(1, 2, 20, conv_channels=32, primary_maps=8, primary_dim=8, digit_dim=8, mean=(0.15,), std=(0.3,))


def test_parameter_counts_match_the_paper():
    model = create_model("capsnet")
    assert count_parameters(model) == 8_215_568
    assert count_parameters(model) - count_parameters(model.decoder) == 6_804_224
    assert model.weight.shape == (1152, 10, 16, 8)
    assert get_spec("capsnet").outputs == "capsules"


def test_squash_is_safe_at_zero():
    s = torch.zeros(3, 16, requires_grad=True)
    v = squash(s)
    v.sum().backward()
    assert torch.equal(v, torch.zeros(3, 16))
    assert torch.isfinite(s.grad).all()


def test_squash_length():
    s = torch.tensor([[3.0, 4.0]])  # length 5 -> 25 / 26
    assert squash(s).norm().item() == pytest.approx(25 / 26)


def test_coupling_coefficients_sum_to_one_over_output_capsules():
    u_hat = torch.randn(4, 30, 10, 16)
    v, c = route(u_hat, iterations=3)
    assert v.shape == (4, 10, 16) and c.shape == (4, 30, 10)
    assert torch.allclose(c.sum(dim=2), torch.ones(4, 30))
    assert not torch.allclose(c, torch.full_like(c, 0.1))  # routing moved them away from uniform


def test_routing_matches_the_papers_procedure_written_out():
    u_hat = torch.randn(2, 5, 3, 4)
    v, c = route(u_hat, iterations=3)
    for n in range(2):  # one example at a time, as in Procedure 1
        b = torch.zeros(5, 3)
        for _ in range(3):
            c_n = b.softmax(dim=1)
            v_n = squash((c_n.unsqueeze(-1) * u_hat[n]).sum(0))
            b = b + (u_hat[n] * v_n).sum(-1)
        assert torch.allclose(v[n], v_n, atol=1e-6) and torch.allclose(c[n], c_n, atol=1e-6)


def test_margin_loss_by_hand():
    lengths = torch.tensor([[0.95, 0.30, 0.05], [0.50, 0.20, 0.80]])
    y = torch.tensor([0, 2])
    first = 0.0 + 0.5 * (0.30 - 0.1) ** 2 + 0.0  # present is long enough; one absent too long
    second = 0.5 * (0.50 - 0.1) ** 2 + 0.5 * (0.20 - 0.1) ** 2 + (0.9 - 0.80) ** 2
    assert margin_loss(lengths, y).item() == pytest.approx((first + second) / 2)


def test_decoder_is_masked_by_true_label_in_training_and_by_prediction_in_eval():
    model = tiny()
    x = torch.randn(8, 1, 20, 20)
    y = 1 - model(x).argmax(1)  # labels that all disagree with the prediction
    seen = []
    model.decoder.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].view(8, 2, 8)))

    def masked_class(decoder_input):
        assert (decoder_input.abs().sum(-1) > 0).sum(1).eq(1).all()  # exactly one capsule survives the mask
        return decoder_input.abs().sum(-1).argmax(1)

    model.train()
    model.loss(x, y)
    assert torch.equal(masked_class(seen[-1]), y)
    model.eval()
    model.loss(x, y)
    assert torch.equal(masked_class(seen[-1]), 1 - y)


def test_no_nan_with_all_zero_input():
    model = create_model("capsnet")
    x = torch.zeros(2, 1, 28, 28)
    loss, lengths = model.loss(x, torch.tensor([3, 7]))
    loss.backward()
    assert torch.isfinite(lengths).all() and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_reconstruction_target_undoes_the_normalization():
    model = tiny()
    assert set(model.state_dict()) >= {"mean", "std"}  # saved with the weights
    image = torch.rand(3, 1, 20, 20)
    y = torch.tensor([0, 1, 0])
    loss, lengths = model.loss((image - 0.15) / 0.3, y)
    recon = model.reconstruct((image - 0.15) / 0.3, y)
    sse = (recon - image).pow(2).flatten(1).sum(1).mean()
    assert loss.item() == pytest.approx((margin_loss(lengths, y) + 0.0005 * sse).item(), rel=1e-5)


def test_channels_last_gives_the_same_capsules():
    """The training loop moves convolutional models and their batches to channels_last."""
    model = tiny()
    x = torch.randn(4, 1, 20, 20)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)


def test_picture_api_shapes():
    model = tiny()
    x = torch.randn(5, 1, 20, 20)
    recon = model.reconstruct(x)
    assert recon.shape == (5, 1, 20, 20) and 0 <= recon.min() and recon.max() <= 1
    rows = model.perturb_dimensions(x[0])
    assert rows.shape == (8, 11, 1, 20, 20)
    assert torch.allclose(rows[:, 5], recon[0].expand(8, 1, 20, 20), atol=1e-6)  # the middle step is 0


def bars(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a vertical bar, class 1: a horizontal one, at a random place, with noise; normalized."""
    y = torch.randint(0, 2, (n,), generator=generator)
    pos = torch.randint(3, 17, (n,), generator=generator)
    x = 0.1 * torch.rand(n, 1, 20, 20, generator=generator)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, :, pos[i]] = 1.0
        else:
            x[i, 0, pos[i], :] = 1.0
    return (x - 0.15) / 0.3, y


def test_tiny_capsnet_learns_bars():
    model = tiny()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        x, y = bars(32, g)
        loss, _ = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = bars(200, g)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9
