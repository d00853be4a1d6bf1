"""Bicubic interpolation as a model: MATLAB ``imresize``, the baseline of every SR table."""

from __future__ import annotations

import torch
from torch import nn

from zoomsr.models.registry import ModelSpec, register
from zoomsr.ops.resize import imresize


class Bicubic(nn.Module):
    """Upscales with MATLAB-exact bicubic.

    ``levels`` (e.g. 255 for an 8-bit image) makes it round and clamp after each 1-D pass, as
    MATLAB does on integer images, so the baseline numbers match the published ones exactly;
    the inference engine sets it from the input's bit depth. ``None`` keeps the float result.
    """

    def __init__(self, scale: int, levels: int | None = None):
        super().__init__()
        self.scale = scale
        self.levels = levels

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if self.levels is None:
            return imresize(lr, self.scale)
        # Integer-exact rounding needs float64 (ties at x.5 must be seen exactly).
        return imresize(lr.double(), self.scale, levels=self.levels).to(lr.dtype)


register(
    ModelSpec(
        name="bicubic",
        task="sisr",
        build=Bicubic,
        scales=tuple(range(2, 9)),
        summary="MATLAB-exact bicubic interpolation (no weights)",
    )
)
