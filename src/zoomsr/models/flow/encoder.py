"""SDFlow's LR content feature extractor (reference §3 "LR content feature extractor", paper
Fig. 3): a ResNet whose blocks are modulated by features of the degraded input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.models.flow.rrdb import SLOPE, reflect_conv

Tensor = torch.Tensor


class FeatureModulation(nn.Module):
    """FM(f, m) = f·(σ·tanh(a/(σ + 1e-6))) + b with [a, b] = 1x1 conv(m), σ = exp(log_scale).

    f is multiplied by the bounded modulation itself, not by 1 + it (as the official code).
    """

    def __init__(self, channels: int = 64):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1))
        self.affine = nn.Conv2d(channels, 2 * channels, 1)

    def forward(self, f: Tensor, m: Tensor) -> Tensor:
        a, b = self.affine(m).chunk(2, dim=1)
        sigma = torch.exp(self.log_scale)
        return f * (sigma * torch.tanh(a / (sigma + 1e-6))) + b


class FMResBlock(nn.Module):
    """g + 0.1·conv2(FM2(LReLU(conv1(FM1(g, m))), m))."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.fm1 = FeatureModulation(channels)
        self.conv1 = reflect_conv(channels, channels)
        self.fm2 = FeatureModulation(channels)
        self.conv2 = reflect_conv(channels, channels)

    def forward(self, g: Tensor, m: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv1(self.fm1(g, m)), SLOPE)
        return g + 0.1 * self.conv2(self.fm2(h, m))


class LRContentEncoder(nn.Module):
    """LR image (model space) -> content latent z_c of the same size (official
    ``LRImageEncoderFM(3, 3, 64, n_blocks)``; not invertible). Default PyTorch init throughout."""

    def __init__(
        self, n_blocks: int = 16, channels: int = 64, modulation_convs: int = 8, c_out: int = 3
    ):
        super().__init__()
        self.conv_in = reflect_conv(3, channels)
        layers: list[nn.Module] = []
        for _ in range(modulation_convs):
            layers += [reflect_conv(channels, channels), nn.LeakyReLU(SLOPE)]
        self.modulation = nn.Sequential(*layers)
        self.trunk = nn.ModuleList(FMResBlock(channels) for _ in range(n_blocks))
        self.conv_mid = reflect_conv(channels, channels)
        self.conv_out = nn.Conv2d(channels, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        f0 = F.leaky_relu(self.conv_in(x), SLOPE)
        m = self.modulation(f0)
        g = f0
        for block in self.trunk:
            g = block(g, m)
        return self.conv_out(F.leaky_relu(self.conv_mid(f0 + g), SLOPE))
