"""Position-preserving ("centroid") loss of SelfDZSR's auxiliary-LR generator (reference §4.2).

The generator must not shift the image, or the auxiliary LR would be misaligned with the GT it
was made from. The official code (reproduced here, quirk #1) asks every kernel *column* to have
zero vertical first moment and every *row* zero horizontal first moment, with 1/k averaging;
this is stricter than the paper's whole-kernel centroid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def centroid_penalty(weight: torch.Tensor) -> torch.Tensor:
    """Mean |first moment| of every row and column of ``weight`` (out x in x k x k, k odd)."""
    k = weight.shape[-1]
    if weight.ndim != 4 or weight.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"expected square odd kernels out x in x k x k, got {tuple(weight.shape)}")
    t = torch.arange(-(k // 2), k // 2 + 1, device=weight.device, dtype=weight.dtype)
    column = (weight * t.view(k, 1)).mean(dim=2).abs()  # vertical moment of each column j
    row = (weight * t.view(1, k)).mean(dim=3).abs()  # horizontal moment of each row i
    return (column + row).mean()


class CentroidLoss(nn.Module):
    """``weight`` x the sum of :func:`centroid_penalty` over the given kernels (λ_c = 100)."""

    def __init__(self, weight: float = 100.0):
        super().__init__()
        self.weight = weight

    def forward(self, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.weight * sum(centroid_penalty(w) for w in kernels)
