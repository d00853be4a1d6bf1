"""Resizing with a named interpolation, for down-sampling steps of the degradation pipelines.

``bicubic`` is MATLAB's antialiased bicubic (:func:`zoomsr.ops.resize.imresize`, the benchmark
kernel); ``bilinear``, ``area`` and ``nearest`` are torch's ``F.interpolate`` modes, which
match OpenCV's ``INTER_LINEAR`` (no antialiasing), ``INTER_AREA`` (box average; at integer
factors) and ``INTER_NEAREST`` that BSRGAN and Real-ESRGAN draw from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoomsr.errors import ZoomsrError
from zoomsr.ops.resize import imresize

RESIZE_MODES = ("bicubic", "bilinear", "area", "nearest")


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` resized to ``size = (h, w)`` with interpolation ``mode``."""
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ZoomsrError(f"resize to {w}x{h}: the size must be positive")
    if (h, w) == tuple(x.shape[-2:]):
        return x
    if mode == "bicubic":
        return imresize(x, size=(h, w))
    if mode == "bilinear":
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if mode in ("area", "nearest"):
        return F.interpolate(x, size=(h, w), mode=mode)
    raise ZoomsrError(f"unknown resize mode '{mode}'; use one of {', '.join(RESIZE_MODES)}")


def scaled_size(hw: tuple[int, int], factor: float) -> tuple[int, int]:
    """``(int(h * factor), int(w * factor))``, at least one pixel (as OpenCV callers compute it)."""
    return max(1, int(hw[0] * factor)), max(1, int(hw[1] * factor))
