"""Auxiliary-LR generator (SelfDZSR's degradation network, official ``KernelGen``; §3.1).

It learns the degradation from the GT (tele) to the LR (wide) so that training can use an
auxiliary LR that is pixel-aligned with the GT: the GT is folded to the LR grid by
space-to-depth, modulated by a global guide vector computed from GT and LR together, and mixed by
7x7/5x5/3x3 convs (the "spatial kernels", kept centred by the centroid loss) and 1x1 convs.
Only used for training; the test-time model does not need it.
"""

from __future__ import annotations

import torch
from torch import nn

from zoomsr.models.zoom.restoration import RGBMeanShift


class AuxLRGenerator(nn.Module):
    """``forward(gt, lr) -> (aux_lr, kernels)``: the noise-free auxiliary LR (N x 3 x h x w) and
    the 7x7, 5x5 and 3x3 conv weights for :class:`zoomsr.losses.centroid.CentroidLoss`.

    ``gt`` is N x 3 x (scale·h) x (scale·w), ``lr`` is N x 3 x h x w. Space-to-depth is
    ``nn.PixelUnshuffle`` order (the converter permutes official weights).
    """

    def __init__(self, scale: int = 4, n_feats: int = 64):
        super().__init__()
        self.scale = scale
        folded = 3 * scale**2
        self.shift_in = RGBMeanShift(-1)
        self.unshuffle = nn.PixelUnshuffle(scale)
        relu = nn.ReLU
        self.guide = nn.Sequential(
            nn.Conv2d(folded + 3, n_feats, 7, stride=2),  # no padding: a global statistic
            relu(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            relu(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            relu(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(n_feats, n_feats, 1),
        )
        self.embed = nn.Sequential(nn.Conv2d(folded, n_feats, 1), relu(inplace=True))
        self.spatial = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 7, padding=3),
            relu(inplace=True),
            nn.Conv2d(n_feats, n_feats, 5, padding=2),
            relu(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            relu(inplace=True),
        )
        pointwise: list[nn.Module] = []
        for _ in range(3):
            pointwise += [nn.Conv2d(n_feats, n_feats, 1), relu(inplace=True)]
        self.pointwise = nn.Sequential(*pointwise)
        self.to_rgb = nn.Conv2d(n_feats, 3, 1)
        self.shift_out = RGBMeanShift(+1)

    def kernels(self) -> list[torch.Tensor]:
        """The spatial conv weights (7x7, 5x5, 3x3) whose centroids the centroid loss pins."""
        return [self.spatial[i].weight for i in (0, 2, 4)]

    def forward(
        self, gt: torch.Tensor, lr: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s = self.scale
        if gt.shape[-2] != s * lr.shape[-2] or gt.shape[-1] != s * lr.shape[-1]:
            raise ValueError(f"GT {tuple(gt.shape)} must be {s}x the LR {tuple(lr.shape)}")
        folded = self.unshuffle(self.shift_in(gt))
        g = self.guide(torch.cat([folded, self.shift_in(lr)], dim=1))
        head = self.embed(folded)
        x = self.spatial(head * g + head)  # global channel modulation head·(1 + g)
        x = self.pointwise(x) + head
        return self.shift_out(self.to_rgb(x)), self.kernels()
