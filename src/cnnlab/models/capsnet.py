"""CapsNet: Sabour, Frosst & Hinton (2017), "Dynamic routing between capsules".

Conv1 (256 channels, 9x9, ReLU) -> PrimaryCaps (32 maps of 8-D capsules, 9x9 stride 2) -> DigitCaps (one 16-D
capsule per class, routing-by-agreement) -> the length of each digit capsule is the probability that its class is
present. A decoder (160 -> 512 -> 1024 -> pixels) reconstructs the image from the capsule of one class; its error is
added to the margin loss as a regulariser that makes the 16 dimensions mean something (see `perturb_dimensions`).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.data.preprocess import column, denormalize
from cnnlab.models.recipe import Recipe
from cnnlab.models.registry import register


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Shrink a vector to length |s|²/(1+|s|²), keeping its direction.

    The epsilon inside the square root keeps both the value and the gradient finite for a zero vector (without it,
    0/0 gives NaN, and a single dead capsule would poison the whole batch).
    """
    sq = (s * s).sum(dim, keepdim=True)
    return s * (sq / (1 + sq) / torch.sqrt(sq + eps))


def route(u_hat: torch.Tensor, iterations: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Routing-by-agreement (the paper's Procedure 1), for a whole batch at once.

    `u_hat` [N, I, J, D] holds each input capsule i's prediction for output capsule j. Returns the output capsules
    v [N, J, D] and the coupling coefficients c [N, I, J] of the last iteration (each input's c sums to 1 over j).

    The routing logits b start at zero for every example: they are not parameters but a few steps of inference.
    Only the final iteration lets gradients flow back into u_hat; the earlier ones see a detached copy and only
    decide the coefficients. Back-propagating through them too is what the paper's equations imply, but it keeps
    every iteration's [N, J, I, D] intermediates alive: at batch 128 detaching saves ~200 MB and ~15% of a
    training step, and is a common choice in CapsNet implementations.
    """
    u_hat = u_hat.transpose(1, 2)  # [N, J, I, D]: sums over i become matmuls
    u_fixed = u_hat.detach()
    b = u_hat.new_zeros(u_hat.shape[:3])  # [N, J, I]
    for r in range(iterations):
        c = b.softmax(dim=1)  # over the output capsules
        last = r == iterations - 1
        s = (c.unsqueeze(2) @ (u_hat if last else u_fixed)).squeeze(2)  # s_j = sum_i c_ij u_hat_j|i
        v = squash(s)
        if not last:
            b = b + (u_fixed @ v.unsqueeze(-1)).squeeze(-1)  # agreement: u_hat_j|i · v_j
    return v, c.transpose(1, 2)


def margin_loss(
    lengths: torch.Tensor, y: torch.Tensor, m_plus: float = 0.9, m_minus: float = 0.1, lam: float = 0.5
) -> torch.Tensor:
    """The paper's equation 4: the true class's capsule should be longer than m+, every other one shorter than m-.

    Summed over classes, mean over the batch. λ down-weights the absent classes so that early in training the
    many "no" answers do not shrink every capsule.
    """
    t = nn.functional.one_hot(y, lengths.shape[1]).to(lengths.dtype)
    present = t * (m_plus - lengths).clamp(min=0) ** 2
    absent = lam * (1 - t) * (lengths - m_minus).clamp(min=0) ** 2
    return (present + absent).sum(1).mean()


class CapsNet(nn.Module):
    """The paper's three-layer CapsNet with its reconstruction decoder; `forward` returns capsule lengths.

    The training loop feeds normalized images (x - mean) / std, but the decoder must reproduce the [0, 1] image
    (its sigmoid output cannot reach normalized values, and the paper's 0.0005 weight assumes [0, 1] pixels). So the
    model keeps the normalization as buffers - they are saved in checkpoints with the weights - and undoes it for the
    reconstruction target. The training loop passes its data's mean and std; the defaults are MNIST's.
    """

    RECONSTRUCTION_WEIGHT = 0.0005  # scaled down so the reconstruction does not dominate the margin loss
    # what Grad-CAM and the other layer views look at by default: the capsule layer's channels are vector
    # components, whose gradients cancel out, so its Grad-CAM is zero everywhere; conv1's are features
    inspect_layer = "conv1"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        routing: int = 3,
        conv_channels: int = 256,
        primary_maps: int = 32,
        primary_dim: int = 8,
        digit_dim: int = 16,
        mean: tuple[float, ...] = (0.1307,),
        std: tuple[float, ...] = (0.3081,),
    ):
        super().__init__()
        self.routing = routing
        self.primary_dim = primary_dim
        self.image_shape = (in_channels, image_size, image_size)
        grid = (image_size - 8 - 9) // 2 + 1  # after conv1 (9x9) and primary (9x9, stride 2)
        if grid < 1:
            raise ValueError(f"CapsNet needs images of at least 17x17 pixels, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, conv_channels, 9)
        # One convolution for all capsule maps: channel m * primary_dim + k is dimension k of map m's capsules.
        self.primary = nn.Conv2d(conv_channels, primary_maps * primary_dim, 9, stride=2)
        # W_ij maps input capsule i to its prediction for class j; no bias, as in the paper. Small on purpose:
        # with std 0.35 (a fan-in init, 1/sqrt(8)) every capsule starts saturated, length ~1, and MNIST training
        # stalls; with 0.1 it learns slower than with 0.01.
        self.weight = nn.Parameter(0.01 * torch.randn(primary_maps * grid * grid, num_classes, digit_dim, primary_dim))
        self.decoder = nn.Sequential(
            nn.Linear(num_classes * digit_dim, 512),
            nn.ReLU(),
            nn.Linear(512, 1024),
            nn.ReLU(),
            nn.Linear(1024, in_channels * image_size * image_size),
            nn.Sigmoid(),
        )
        self.register_buffer("mean", column(mean))
        self.register_buffer("std", column(std))

    def capsules(self, x: torch.Tensor) -> torch.Tensor:
        """The digit capsules v [N, classes, digit_dim], always float32.

        The convolutions follow the caller's autocast (bf16 makes them ~2x faster on CPUs with AMX); the capsule
        arithmetic does not, because squash and routing divide by and sum over small lengths.
        """
        h = self.primary(torch.relu(self.conv1(x)))  # [N, maps * dim, G, G]
        n, _, g, _ = h.shape
        u = h.view(n, -1, self.primary_dim, g, g).permute(0, 1, 3, 4, 2).reshape(n, -1, self.primary_dim)
        with torch.autocast(x.device.type, enabled=False):  # capsule math in float32, even under bf16 autocast
            u = squash(u.float())
            u_hat = torch.einsum("ijdk,nik->nijd", self.weight, u)  # [N, 1152, 10, 16]; W is not copied per example
            v, _ = route(u_hat, self.routing)
        return v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.capsules(x).norm(dim=-1)

    def decode(self, v: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Reconstruct images [N, C, H, W] in [0, 1] from the capsule of `classes` only (the others are zeroed)."""
        mask = nn.functional.one_hot(classes, v.shape[1]).to(v.dtype).unsqueeze(-1)
        return self.decoder((v * mask).flatten(1)).view(-1, *self.image_shape)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Margin loss + 0.0005 * sum of squared reconstruction errors; returns (loss, capsule lengths).

        The decoder sees the true class's capsule while training (it is taught what each class looks like) and
        the predicted one in eval mode, where the label must not leak into the prediction's reconstruction.
        """
        v = self.capsules(x)
        lengths = v.norm(dim=-1)
        recon = self.decode(v, y if self.training else lengths.argmax(1)).float()
        target = denormalize(x.float(), self.mean, self.std)
        sse = (recon - target).pow(2).flatten(1).sum(1).mean()
        return margin_loss(lengths, y) + self.RECONSTRUCTION_WEIGHT * sse, lengths

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstructions [N, C, H, W] in [0, 1] from the capsule of class `y`, or of the predicted class."""
        v = self.capsules(x)
        return self.decode(v, v.norm(dim=-1).argmax(1) if y is None else y).float()

    @torch.no_grad()
    def perturb_dimensions(
        self, x: torch.Tensor, steps: torch.Tensor = torch.arange(-0.25, 0.2501, 0.05)
    ) -> torch.Tensor:
        """The paper's Figure 4: for one image, each dimension of its predicted capsule nudged by each step.

        Returns [digit_dim, len(steps), C, H, W]: row d shows what dimension d encodes (stroke width, skew, ...).
        """
        v = self.capsules(x.reshape(1, *self.image_shape))[0]  # [classes, D]
        cls = v.norm(dim=-1).argmax()
        d = v.shape[1]
        steps = steps.to(v)
        nudged = v[cls] + torch.eye(d, device=v.device).unsqueeze(1) * steps.view(1, -1, 1)  # [D, S, D]
        caps = v.new_zeros(d * len(steps), *v.shape)
        caps[:, cls] = nudged.view(-1, d)
        return self.decode(caps, cls.expand(len(caps))).float().view(d, len(steps), *self.image_shape)


@register(
    "capsnet",
    "Sabour et al. 2017: conv 256 9x9, 32x6x6 8-D primary capsules, 10 16-D digit capsules, routing, decoder",
    default_input=(1, 28, 28),
    outputs="capsules",
    takes_normalization=True,
    recipes={
        # in a 3-epoch budget, warm-up then annealing beats the paper's exponential decay
        "default": Recipe(epochs=3, batch_size=64, lr=2e-3, optimizer="adam", schedule="onecycle", augment="crop=2"),
        "paper": Recipe(
            epochs=50, batch_size=128, lr=1e-3, optimizer="adam", schedule="exponential", decay=0.96, augment="crop=2"
        ),
    },
)
def capsnet(in_channels: int, num_classes: int, image_size: int, routing: int = 3, **kw) -> CapsNet:
    return CapsNet(in_channels, num_classes, image_size, routing=routing, **kw)
