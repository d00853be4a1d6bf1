"""The conditional feature extractor of SDFlow's HF and Deg flows (reference §3
"Conditional feature extractor"): a short ESRGAN RRDB trunk between reflect-padded convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor

SLOPE = 0.2  # every LeakyReLU outside the flow coupling nets


def _scaled_xavier(*convs: nn.Conv2d, gain: float = 0.1) -> None:
    for conv in convs:
        nn.init.xavier_normal_(conv.weight)
        conv.weight.data.mul_(gain)
        nn.init.zeros_(conv.bias)


def reflect_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 conv on a reflection-padded input (same size)."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect")


class DenseBlock(nn.Module):
    """ESRGAN residual dense block: 5 zero-padded 3x3 convs, growth ``growth``, x + 0.2·out."""

    def __init__(self, channels: int = 64, growth: int = 32):
        super().__init__()
        for i in range(5):
            c_out = channels if i == 4 else growth
            setattr(self, f"conv{i + 1}", nn.Conv2d(channels + i * growth, c_out, 3, padding=1))
        _scaled_xavier(*(getattr(self, f"conv{i + 1}") for i in range(5)))

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), SLOPE))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks, then x + 0.2·out."""

    def __init__(self, channels: int = 64, growth: int = 32):
        super().__init__()
        self.rdb1 = DenseBlock(channels, growth)
        self.rdb2 = DenseBlock(channels, growth)
        self.rdb3 = DenseBlock(channels, growth)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class ConditionNet(nn.Module):
    """cond (c_in ch) -> 64-ch features at the same size: conv, RRDB trunk + skip, conv-act-conv."""

    def __init__(self, c_in: int, n_rrdb: int, channels: int = 64):
        super().__init__()
        self.conv_in = reflect_conv(c_in, channels)
        self.trunk = nn.Sequential(*(RRDB(channels) for _ in range(n_rrdb)))
        self.trunk_conv = reflect_conv(channels, channels)  # default PyTorch init (official)
        self.conv_hidden = reflect_conv(channels, channels)
        self.conv_out = reflect_conv(channels, channels)
        _scaled_xavier(self.conv_in, self.conv_hidden, self.conv_out)

    def forward(self, cond: Tensor) -> Tensor:
        f = self.conv_in(cond)
        f = self.trunk_conv(self.trunk(f)) + f
        return self.conv_out(F.leaky_relu(self.conv_hidden(f), SLOPE))
