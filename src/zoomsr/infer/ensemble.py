"""x8 geometric self-ensemble (flips and transposes, averaged after undoing each)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _transform(x: torch.Tensor, index: int) -> torch.Tensor:
    # Order of EDSR-PyTorch's forward_x8: x, flipW, flipH, flipH(flipW), then their transposes.
    if index % 2 == 1:
        x = x.flip(-1)
    if index % 4 >= 2:
        x = x.flip(-2)
    if index >= 4:
        x = x.transpose(-2, -1)
    return x


def _inverse(y: torch.Tensor, index: int) -> torch.Tensor:
    if index >= 4:
        y = y.transpose(-2, -1)
    if index % 4 >= 2:
        y = y.flip(-2)
    if index % 2 == 1:
        y = y.flip(-1)
    return y


def self_ensemble(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean of the 8 dihedral variants, one forward at a time to bound memory."""
    total = None
    for i in range(8):
        y = _inverse(forward(_transform(x, i)), i)
        total = y if total is None else total + y
    return total / 8
