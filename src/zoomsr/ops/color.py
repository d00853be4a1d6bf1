"""Colour conversions on ``(..., C, H, W)`` tensors in [0, 1]."""

from __future__ import annotations

import torch

# ITU-R BT.601 luma in "studio" range (16-235), as MATLAB's rgb2ycbcr and the SR papers use.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
# BT.601 luma weights for full-range gray (they sum to one, so gray RGB maps to itself).
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 YCbCr on a 0..255 scale (16..235), not rounded; ``(..., 3, H, W) -> (..., 1, H, W)``.

    A one-channel input is gray already: its "Y" is the gray level itself (0..255), which is how
    the published Set14 tables score the gray ``bridge``.
    """
    if x.shape[-3] == 1:
        return x * 255.0
    w = x.new_tensor(_Y_WEIGHTS).view(3, 1, 1)
    return 16.0 + (x * w).sum(dim=-3, keepdim=True)


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Replicate a gray ``(..., 1, H, W)`` tensor to three channels; RGB passes through."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 luma ``(..., 1, H, W)``; gray passes through."""
    if x.shape[-3] == 1:
        return x
    w = x.new_tensor(_LUMA_WEIGHTS).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


def quantize(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Round to the grid of an ``levels``-step integer image, as saving to a file would."""
    return torch.round(x.clamp(0, 1) * levels) / levels


# MATLAB rgb2ycbcr (BT.601, studio range) on [0, 1] values; rows give Y, Cb, Cr (x 1/255).
_YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
_YCBCR_OFFSET = (16.0, 128.0, 128.0)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2ycbcr`` on ``(..., 3, H, W)`` in [0, 1]; returns Y, Cb, Cr in [0, 1]."""
    m = x.new_tensor(_YCBCR) / 255.0
    off = x.new_tensor(_YCBCR_OFFSET).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x) + off


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    m = torch.linalg.inv(x.new_tensor(_YCBCR, dtype=torch.float64) / 255.0).to(x.dtype)
    off = x.new_tensor(_YCBCR_OFFSET).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x - off)


def fit_colour_match(
    source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, keep: float = 0.95
) -> dict:
    """Brightness and white balance that bring ``source`` towards ``target`` (SelfDZSR, sec. 2.1).

    Both ``(3, H, W)`` in [0, 1] on the same grid. Luma: least squares ``a*Y_src + b ~ Y_tgt`` on
    the ``keep`` fraction of (valid) pixels that agree best, so occlusions and parallax do not
    pull the fit. Then per-channel gains that equalise the channel balance. Returns plain floats.
    """
    ys, yt = rgb_to_ycbcr(source)[0], rgb_to_ycbcr(target)[0]
    valid = (
        mask.bool().reshape(ys.shape) if mask is not None else torch.ones_like(ys, dtype=torch.bool)
    )
    err = (ys - yt).abs()[valid]
    thr = torch.quantile(err.double()[:: max(1, err.numel() // 1_000_000)], keep)
    sel = valid & ((ys - yt).abs() <= thr)
    x, y = ys[sel].double(), yt[sel].double()
    a_mat = torch.stack([x, torch.ones_like(x)], dim=1)
    a, b = torch.linalg.lstsq(a_mat, y[:, None]).solution.flatten().tolist()
    matched = _apply_luma(source, a, b)
    ms = matched[:, valid].double().mean(dim=1)
    mt = target[:, valid].double().mean(dim=1)
    gains = (ms.mean() * mt / (mt.mean() * ms)).tolist()
    return {"luma_a": a, "luma_b": b, "gains": gains, "kept_fraction": keep}


def _apply_luma(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    ycc = rgb_to_ycbcr(x)
    ycc = torch.cat([a * ycc[:1] + b, ycc[1:]], dim=0)
    return ycbcr_to_rgb(ycc)


def apply_colour_match(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Apply :func:`fit_colour_match`'s result to ``(3, H, W)``; clamps to [0, 1]."""
    out = _apply_luma(x, params["luma_a"], params["luma_b"])
    gains = out.new_tensor(params["gains"]).view(3, 1, 1)
    return (out * gains).clamp(0, 1)
