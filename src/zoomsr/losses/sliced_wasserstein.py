"""Sliced Wasserstein (SW) feature loss of SelfDZSR (ECCV 2022; reference §4.3).

SW compares the *distributions* of feature vectors rather than their positions, so a residual
misalignment between output and GT is not punished as blur. For C-channel features, C/2 random
unit directions are drawn, both feature sets are projected on them, each projection is sorted
over space and the sorted values are compared with L1. The directions are redrawn at every call
from an explicit ``torch.Generator`` (the official code uses numpy's global RNG).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def random_projections(
    n: int, channels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` x ``channels`` Gaussian directions, each row of unit L2 norm (drawn on the CPU)."""
    return F.normalize(torch.randn(n, channels, generator=generator), dim=1)


def sliced_wasserstein(
    output: torch.Tensor,
    target: torch.Tensor,
    projections: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Global SW distance of two N x C x H x W feature maps: mean |sort(P·u) - sort(P·v)|.

    ``projections`` (K x C, rows of unit norm) default to C/2 fresh random directions, shared
    by output and target and by every sample of the batch.
    """
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    n, c = output.shape[:2]
    if projections is None:
        projections = random_projections(max(1, c // 2), c, generator)
    projections = projections.to(device=output.device, dtype=output.dtype)
    u = torch.matmul(projections, output.reshape(n, c, -1)).sort(dim=2).values
    v = torch.matmul(projections, target.reshape(n, c, -1)).sort(dim=2).values
    return F.l1_loss(u, v)


class SlicedWassersteinLoss(nn.Module):
    """SelfDZSR's SW loss on VGG19 features: ``scale`` x Σ_l w_l · SW(φ_l(sr), φ_l(hr)).

    Defaults are the paper's: relu3_2, relu4_2, relu5_2 with weights 1, 1, 2 and scale 0.08.
    ``seed`` fixes the stream of projections (redrawn at every call).
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu3_2", "relu4_2", "relu5_2"),
        layer_weights: Sequence[float] = (1.0, 1.0, 2.0),
        scale: float = 0.08,
        backbone: str = "vgg19",
        seed: int = 0,
        extractor: nn.Module | None = None,
    ):
        super().__init__()
        if extractor is None:
            from zoomsr.backbones import FeatureExtractor

            extractor = FeatureExtractor(backbone, tuple(layers))
        self.extractor = extractor
        self.layers = tuple(layers)
        self.layer_weights = tuple(layer_weights)
        self.scale = scale
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor | None = None):
        fs = self.extractor(sr)
        with torch.no_grad():
            ft = self.extractor(hr)
        total = sum(
            w * sliced_wasserstein(fs[k], ft[k], generator=self.generator)
            for k, w in zip(self.layers, self.layer_weights, strict=True)
        )
        return self.scale * total
