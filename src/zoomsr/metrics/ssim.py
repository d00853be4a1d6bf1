"""SSIM (Wang et al. 2004) with the 11x11 Gaussian window, sigma 1.5.

Computed over the 'valid' region of the window, K1 = 0.01, K2 = 0.03, on a 0..255 scale, mean
over the SSIM map and channels. ``sample_covariance=True`` gives scikit-image's
``structural_similarity(gaussian_weights=True)`` (variances scaled by N/(N-1), N = 121), which
the SelfDZSR evaluation uses; ``False`` gives Wang's MATLAB ``ssim_index`` of the SISR tables.
Written on torch convolutions so it runs batched and on the model's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, dtype=torch.float64) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    gx = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    gy = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    return F.conv2d(F.conv2d(x, gx, groups=c), gy, groups=c)


def ssim_map(
    a: torch.Tensor, b: torch.Tensor, *, data_range: float = 255.0, sample_covariance: bool = False
) -> torch.Tensor:
    """SSIM map over the valid region of ``(N, C, H, W)`` float tensors on a ``data_range`` scale."""
    if min(a.shape[-2:]) < WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {WINDOW}x{WINDOW}, got {tuple(a.shape[-2:])}"
        )
    g = gaussian_window(dtype=a.dtype).to(a.device)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a * mu_a
    var_b = _filter(b * b, g) - mu_b * mu_b
    cov = _filter(a * b, g) - mu_a * mu_b
    if sample_covariance:
        n = WINDOW * WINDOW
        var_a, var_b, cov = (t * (n / (n - 1)) for t in (var_a, var_b, cov))
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return num / den


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    shave: int = 0,
    y_only: bool = False,
    sample_covariance: bool = False,
) -> torch.Tensor:
    """SSIM of ``(N, C, H, W)`` images in [0, 1]; returns ``(N,)``."""
    from zoomsr.metrics.psnr import shave_border, to_metric_space

    a = shave_border(to_metric_space(x, y_only), shave)
    b = shave_border(to_metric_space(y, y_only), shave)
    return ssim_map(a, b, sample_covariance=sample_covariance).flatten(1).mean(dim=1)
