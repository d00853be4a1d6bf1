"""PSNR on a 0..255 scale, on RGB or on BT.601 Y."""

from __future__ import annotations

import torch

from zoomsr.ops.color import rgb_to_y


def shave_border(x: torch.Tensor, shave: int) -> torch.Tensor:
    return x[..., shave:-shave, shave:-shave] if shave > 0 else x


def to_metric_space(x: torch.Tensor, y_only: bool) -> torch.Tensor:
    """Float64 on a 0..255 scale: Y (16..235; gray as is) or all channels."""
    x = x.to(torch.float64)
    return rgb_to_y(x) if y_only else x * 255.0


def squared_error(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per-image sum of squared errors (N,) on prepared tensors and the sample count per image."""
    diff = (x - y).flatten(1)
    return (diff * diff).sum(dim=1), diff.shape[1]


def psnr_from_mse(mse: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    return 10.0 * torch.log10(peak * peak / mse)


def psnr(x: torch.Tensor, y: torch.Tensor, *, shave: int = 0, y_only: bool = False) -> torch.Tensor:
    """PSNR in dB of ``(N, C, H, W)`` images in [0, 1]; returns ``(N,)``."""
    a = shave_border(to_metric_space(x, y_only), shave)
    b = shave_border(to_metric_space(y, y_only), shave)
    sse, n = squared_error(a, b)
    return psnr_from_mse(sse / n)
