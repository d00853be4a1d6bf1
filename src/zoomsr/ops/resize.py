"""MATLAB-exact bicubic ``imresize``.

Written by hand because the SR literature's benchmarks (Set5, Set14, ...) were made with
MATLAB's ``imresize(I, 1/s, 'bicubic')`` and no library reproduces it: OpenCV, Pillow and
torch use other kernels, no antialiasing when shrinking, or other borders.

MATLAB's algorithm, per axis: output sample ``i`` (1-based) sits at input position
``u = i/scale + 0.5*(1 - 1/scale)``; it takes ``ceil(kernel_width) + 2`` neighbours weighted by
the cubic kernel (a = -0.5), the kernel being stretched by ``1/scale`` when shrinking
(antialiasing); weights are normalised to sum to one and out-of-range indices are mirrored
(symmetric padding). The axis with the smaller scale goes first (ties: rows first).

Two paths:
- :func:`imresize` works on float tensors (any leading dims), differentiable, on any device.
- ``imresize(..., levels=255)`` and :func:`imresize_uint8` reproduce MATLAB on uint8 images bit
  for bit: computed in float64, rounded half away from zero and saturated after *each* 1-D
  pass, as MATLAB does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from zoomsr.errors import ZoomsrError

_KERNEL_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=64)
def contributions(
    in_length: int, out_length: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-sample source indices (0-based, mirrored) and weights, both (out, taps)."""
    shrink_aa = scale < 1 and antialias
    width = _KERNEL_WIDTH / scale if shrink_aa else _KERNEL_WIDTH
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - indices
    weights = scale * _cubic(dist * scale) if shrink_aa else _cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: 1..n, n..1 repeated.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    # MATLAB drops tap columns whose weights are all zero.
    keep = np.any(weights != 0, axis=0)
    return indices[:, keep], weights[:, keep]


def output_size(
    height: int, width: int, scale: float | None, size: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output (H, W) and per-axis scales, as MATLAB derives them."""
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ZoomsrError(f"resize: output size must be positive, got {size}")
        return (out_h, out_w), (out_h / height, out_w / width)
    if scale is None or scale <= 0:
        raise ZoomsrError(f"resize: scale must be positive, got {scale}")
    # MATLAB: ceil(in * scale); round first so that 1/3 * 3 does not become 2.0000001.
    out_h = math.ceil(round(height * scale, 9))
    out_w = math.ceil(round(width * scale, 9))
    return (out_h, out_w), (scale, scale)


def axis_order(scales: tuple[float, float]) -> tuple[int, int]:
    """MATLAB's order of the 1-D passes: the smaller scale first, rows first on ties."""
    return (0, 1) if scales[0] <= scales[1] else (1, 0)


def _resize_axis_torch(x: torch.Tensor, axis: int, idx: np.ndarray, w: np.ndarray) -> torch.Tensor:
    """Resize along dim -2 (axis 0) or -1 (axis 1) with precomputed taps."""
    dim = x.dim() - 2 + axis
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
    gathered = x.index_select(dim, idx_t.reshape(-1))
    shape = list(x.shape)
    shape[dim : dim + 1] = list(idx.shape)
    gathered = gathered.reshape(shape)
    # Weights broadcast over the tap dimension (dim + 1) and everything else.
    w_shape = [1] * gathered.dim()
    w_shape[dim], w_shape[dim + 1] = w.shape
    return (gathered * w_t.reshape(w_shape)).sum(dim=dim + 1)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    levels: int | None = None,
) -> torch.Tensor:
    """MATLAB bicubic resize of a float tensor ``(..., H, W)``.

    With ``levels=None`` nothing is rounded or clamped (the float path for training). With
    ``levels=255`` the values are rounded half away from zero to the 1/255 grid and clamped to
    [0, 1] after each 1-D pass, which is what MATLAB does to a uint8 image; pass float64 input
    for bit-exact results.
    """
    if not torch.is_floating_point(x):
        raise TypeError("imresize expects a floating-point tensor; use imresize_uint8 for uint8")
    if levels is None:
        return _resize(x, scale, size, antialias, None)
    # Work on the integer scale so that ties (x.5) are seen exactly as MATLAB sees them.
    return _resize(torch.round(x * levels), scale, size, antialias, levels) / levels


def _resize(x, scale, size, antialias, max_level: int | None) -> torch.Tensor:
    out_hw, scales = output_size(x.shape[-2], x.shape[-1], scale, size)
    return resize_axes(x, out_hw, scales, axis_order(scales), antialias, max_level)


def resize_axes(
    x: torch.Tensor,
    out_hw: tuple[int, int],
    scales: tuple[float, float],
    order: tuple[int, int],
    antialias: bool = True,
    max_level: int | None = None,
) -> torch.Tensor:
    """The 1-D passes of a bicubic resize to ``out_hw`` at ``scales``, axes in ``order``.

    For callers that fix both the size and the scale, or their own axis order (ZSSR); with
    ``max_level`` each pass is rounded and clamped to the integer grid ``[0, max_level]``.
    """
    for axis in order:
        n_in = x.shape[x.dim() - 2 + axis]
        if out_hw[axis] == n_in and scales[axis] == 1:
            continue
        idx, w = contributions(n_in, out_hw[axis], scales[axis], antialias)
        x = _resize_axis_torch(x, axis, idx, w)
        if max_level is not None:
            # Clamped values are >= 0, so floor(v + 0.5) rounds half away from zero.
            x = torch.floor(x.clamp(0, max_level) + 0.5)
    return x


def imresize_uint8(
    img: np.ndarray,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize`` on a uint8 image ``(H, W)`` or ``(H, W, C)``, bit-exact."""
    if img.dtype != np.uint8:
        raise TypeError(f"imresize_uint8 expects uint8, got {img.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float64)
    x = x.movedim(-1, 0) if img.ndim == 3 else x
    y = _resize(x, scale, size, antialias, 255)
    y = y.movedim(0, -1) if img.ndim == 3 else y
    return y.to(torch.uint8).numpy()


def modcrop(img, scale: int):
    """Top-left crop of an ``(H, W, ...)`` array or ``(..., H, W)`` tensor to a multiple of scale."""
    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
