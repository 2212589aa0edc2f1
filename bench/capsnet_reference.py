"""A straightforward CapsNet, written the way most tutorials write it, as the baseline for capsnet_throughput.py.

Same architecture, parameter count and loss as `cnnlab.models.capsnet.CapsNet`, but:
- the primary capsules come from eight separate 32-channel convolutions, one per capsule dimension;
- W is tiled to the batch and u_hat comes from a batched matmul of [N, 1152, 10, 16, 8] by u, so W's copy and its
  gradient both exist once per example;
- routing multiplies and sums broadcast tensors and back-propagates through all three iterations.
"""

import torch
from torch import nn


def squash(s, dim=-1):
    sq = (s**2).sum(dim, keepdim=True)
    return sq / (1 + sq) * s / torch.sqrt(sq + 1e-8)


class ReferenceCapsNet(nn.Module):
    def __init__(self, routing=3):
        super().__init__()
        self.routing = routing
        self.conv1 = nn.Conv2d(1, 256, 9)
        self.primary = nn.ModuleList([nn.Conv2d(256, 32, 9, stride=2) for _ in range(8)])
        self.W = nn.Parameter(0.01 * torch.randn(1, 1152, 10, 16, 8))
        self.decoder = nn.Sequential(
            nn.Linear(160, 512), nn.ReLU(), nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 784), nn.Sigmoid()
        )

    def digit_capsules(self, x):
        n = x.shape[0]
        h = torch.relu(self.conv1(x))
        u = torch.stack([conv(h) for conv in self.primary], dim=1)  # [N, 8, 32, 6, 6]
        u = squash(u.view(n, 8, 1152).transpose(1, 2))  # [N, 1152, 8]
        W = self.W.repeat(n, 1, 1, 1, 1)  # [N, 1152, 10, 16, 8]
        u = u[:, :, None, :, None].repeat(1, 1, 10, 1, 1)  # [N, 1152, 10, 8, 1]
        u_hat = torch.matmul(W, u).squeeze(-1)  # [N, 1152, 10, 16]
        b = torch.zeros(n, 1152, 10, 1)
        for i in range(self.routing):
            c = torch.softmax(b, dim=2)
            v = squash((c * u_hat).sum(dim=1, keepdim=True))  # [N, 1, 10, 16]
            if i < self.routing - 1:
                b = b + (u_hat * v).sum(dim=-1, keepdim=True)
        return v.squeeze(1)

    def loss(self, x, y, mean=0.1307, std=0.3081):
        v = self.digit_capsules(x)
        lengths = v.norm(dim=-1)
        t = torch.eye(10)[y]
        margin = (t * torch.relu(0.9 - lengths) ** 2 + 0.5 * (1 - t) * torch.relu(lengths - 0.1) ** 2).sum(1).mean()
        recon = self.decoder((v * t[:, :, None]).view(-1, 160))
        sse = ((recon - (x * std + mean).view(-1, 784)) ** 2).sum(1).mean()
        return margin + 0.0005 * sse, lengths
