"""AdaSTN: adaptive spatial transformer (SelfDZSR, ECCV 2022; reference §3.2).

A depthwise 3x3 deformable conv whose sampling positions are a per-pixel affine map of the
regular 3x3 grid G: ``P = A·G + b``, with the 2x2 matrix A and the translation b predicted from
the features ``x`` and a guide ``g``. Sampling offsets are ``P - G`` (torchvision layout: channel
2k = dy, 2k+1 = dx of tap k = 3i + j).

"P = 0" (all nine taps read the centre pixel) is the training-time dropout of the LR-branch
blocks and their test-time behaviour. Then the block reduces to a per-channel scale by the sum
of the nine taps, which :meth:`AdaSTN.forward` computes directly in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import DeformConv2d


def regular_grid(device: torch.device | None = None) -> torch.Tensor:
    """The 2 x 9 grid G of a 3x3 kernel: row 0 = dy, row 1 = dx of taps k = 3i + j."""
    r = torch.arange(-1.0, 2.0, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dy.reshape(9), dx.reshape(9)])


def affine_offsets(affine: torch.Tensor) -> torch.Tensor:
    """Deformable-conv offsets ``P - G`` (N x 18 x H x W) of a per-pixel affine map.

    ``affine`` is N x 6 x H x W: (a11, a12, a21, a22) row-major acting on (y, x) columns, then
    the translation (ty, tx).
    """
    n, _, h, w = affine.shape
    gy, gx = regular_grid(affine.device).view(2, 1, 9, 1, 1)
    a11, a12, a21, a22, ty, tx = affine.unsqueeze(2).unbind(1)  # each N x 1 x H x W
    dy = a11 * gy + a12 * gx - gy + ty
    dx = a21 * gy + a22 * gx - gx + tx
    return torch.stack([dy, dx], dim=2).reshape(n, 18, h, w)


def centre_offsets(x: torch.Tensor) -> torch.Tensor:
    """Offsets for P = 0 (every tap samples the centre pixel), shaped for ``x``."""
    n, _, h, w = x.shape
    return (-regular_grid(x.device)).t().reshape(1, 18, 1, 1).expand(n, 18, h, w).to(x.dtype)


class AdaSTN(nn.Module):
    """Adaptive spatial transformer block, ``forward(x, guide, centre=None) -> y``.

    ``drop_at_test``: the block runs with P = 0 in eval mode (ECCV ada1..3; the Ref block
    ``ref_ada`` always estimates its offsets). ``depthwise_mixer`` and ``activation`` select the
    ECCV layout (both True) or SelfDZSR++'s (both False).
    """

    def __init__(
        self,
        channels: int = 64,
        drop_at_test: bool = True,
        depthwise_mixer: bool = True,
        activation: bool = True,
    ):
        super().__init__()
        self.drop_at_test = drop_at_test
        c2 = 2 * channels
        layers: list[nn.Module] = []
        if depthwise_mixer:
            layers += [nn.Conv2d(c2, c2, 3, padding=1, groups=c2), nn.LeakyReLU(0.2, inplace=True)]
        # Group k reads concatenated channels (2k, 2k+1) of [x ; guide]: channels 0..C/2-1 see
        # only x and the rest only the guide; the 5x5 affine conv is the first to mix them.
        layers += [nn.Conv2d(c2, channels, 3, padding=1, groups=channels)]
        layers += [nn.LeakyReLU(0.2, inplace=True)]
        self.mixer = nn.Sequential(*layers)
        self.affine = nn.Conv2d(channels, 6, 5, padding=2)  # (a11, a12, a21, a22, ty, tx)
        self.sampler = DeformConv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.act = nn.LeakyReLU(0.2) if activation else nn.Identity()

    def offsets(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return affine_offsets(self.affine(self.mixer(torch.cat([x, guide], dim=1))))

    def forward(
        self, x: torch.Tensor, guide: torch.Tensor | None = None, centre: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``centre``: optional bool (N,) of samples to run with P = 0 (training dropout)."""
        if self.drop_at_test and not self.training:
            return self.forward_centre(x)
        if guide is None:
            raise ValueError("AdaSTN needs a guide to estimate its offsets")
        offset = self.offsets(x, guide)
        if centre is not None:
            offset = torch.where(centre.view(-1, 1, 1, 1), centre_offsets(x), offset)
        return self.act(self.sampler(x, offset))

    def forward_centre(self, x: torch.Tensor) -> torch.Tensor:
        """P = 0 without the deformable conv: each tap reads the centre, so y_c = x_c · Σ w_c."""
        scale = self.sampler.weight.sum(dim=(1, 2, 3))
        return self.act(x * scale.view(1, -1, 1, 1))

    def forward_centre_deform(self, x: torch.Tensor) -> torch.Tensor:
        """P = 0 through the deformable conv, the reference for :meth:`forward_centre`."""
        return self.act(self.sampler(x, centre_offsets(x)))


class DeformAlign(nn.Module):
    """Plain deformable-conv alignment, the ablation baseline to AdaSTN (paper Table 5).

    Same mixer as :class:`AdaSTN`, but a conv predicts all 18 offsets freely instead of an affine
    map of the grid, and there is no P = 0 dropout or test-time collapse.
    """

    def __init__(self, channels: int = 64):
        super().__init__()
        c2 = 2 * channels
        self.mixer = nn.Sequential(
            nn.Conv2d(c2, c2, 3, padding=1, groups=c2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c2, channels, 3, padding=1, groups=channels),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.offset = nn.Conv2d(channels, 18, 5, padding=2)
        nn.init.zeros_(self.offset.weight)  # start as a plain depthwise conv
        nn.init.zeros_(self.offset.bias)
        self.sampler = DeformConv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(
        self, x: torch.Tensor, guide: torch.Tensor | None = None, centre: torch.Tensor | None = None
    ) -> torch.Tensor:
        guide = x if guide is None else guide
        return self.act(self.sampler(x, self.offset(self.mixer(torch.cat([x, guide], dim=1)))))


class NoAlign(nn.Module):
    """No alignment at all (ablation): the features pass unchanged."""

    def forward(
        self, x: torch.Tensor, guide: torch.Tensor | None = None, centre: torch.Tensor | None = None
    ) -> torch.Tensor:
        return x


def make_align(kind: str, channels: int, drop_at_test: bool) -> nn.Module:
    """An alignment block by name: ``adastn`` (the paper's), ``deform`` or ``none`` (ablations)."""
    if kind == "adastn":
        return AdaSTN(channels, drop_at_test=drop_at_test)
    if kind == "deform":
        return DeformAlign(channels)
    if kind == "none":
        return NoAlign()
    raise ValueError(f"unknown alignment '{kind}'; use adastn, deform or none")
