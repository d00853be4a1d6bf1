"""Run a model on an image tensor: channel handling, precision, no-grad."""

from __future__ import annotations

import torch
from torch import nn

from zoomsr.ops.color import to_gray, to_rgb


@torch.no_grad()
def run_sisr(model: nn.Module, lr: torch.Tensor, bit_depth: int = 8) -> torch.Tensor:
    """Super-resolve ``(N, C, h, w)`` in [0, 1]; returns ``(N, C, s*h, s*w)`` clamped to [0, 1].

    A gray input to a model that needs RGB is replicated and its output turned back to gray.
    """
    if hasattr(model, "levels"):
        # Interpolation baselines reproduce MATLAB on integer images at the file's bit depth.
        model.levels = 2**bit_depth - 1
    device = next(model.parameters(), torch.empty(0)).device
    x = lr.to(device)
    gray_in = x.shape[1] == 1 and getattr(model, "in_channels", None) == 3
    if gray_in:
        x = to_rgb(x)
    y = model(x)
    if gray_in:
        y = to_gray(y)
    return y.clamp(0, 1).cpu()
