"""Pixel losses. Every loss term takes ``(sr, hr, lr)`` and returns a scalar."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.ops.resize import imresize


class L1(nn.Module):
    def forward(self, sr, hr, lr=None):
        return F.l1_loss(sr, hr)


class MSE(nn.Module):
    def forward(self, sr, hr, lr=None):
        return F.mse_loss(sr, hr)


class Charbonnier(nn.Module):
    """sqrt((x - y)^2 + eps^2): a differentiable L1 (LapSRN)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, sr, hr, lr=None):
        return torch.sqrt((sr - hr) ** 2 + self.eps**2).mean()


class TV(nn.Module):
    """Anisotropic total variation of the output (mean absolute neighbour difference)."""

    def forward(self, sr, hr=None, lr=None):
        dh = (sr[..., 1:, :] - sr[..., :-1, :]).abs().mean()
        dw = (sr[..., :, 1:] - sr[..., :, :-1]).abs().mean()
        return dh + dw


class Cycle(nn.Module):
    """L1 between the output downscaled (MATLAB bicubic) and the input: back-projection consistency."""

    def forward(self, sr, hr, lr):
        return F.l1_loss(imresize(sr, size=tuple(lr.shape[-2:])), lr)
