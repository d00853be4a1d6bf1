"""SR kernels for the zero-shot models: sampling, centring and alignment.

Downscaling with a kernel is :func:`zoomsr.ops.degrade.kernels.blur_downsample`.

Convention (as ZSSR and KernelGAN use it): an SR kernel ``k`` at integer factor ``s`` makes
``LR = (HR ⋆ k)[::s, ::s]`` (correlation, padding ``size // 2``), with LR pixel ``i`` at HR
position ``s*i + (s-1)/2``, exactly where MATLAB's bicubic ``imresize`` puts it. For that the
kernel is *aligned*: odd size ``2c + 1``, centre of mass at ``(c + (s-1)/2, c + (s-1)/2)``,
half a pixel off the middle at even factors (KernelGAN's saved kernels are aligned the same way).

A kernel is known only up to translation, so :func:`align_kernel` moves its centre of mass
there. A sub-pixel move interpolates (and slightly blurs) the kernel: do it once, from the raw
kernel; an aligned kernel passes through unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from zoomsr.ops.degrade.kernels import anisotropic_gaussian_kernel


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's cubic convolution kernel (a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def bicubic_kernel(scale: int) -> np.ndarray:
    """The 2-D kernel of MATLAB's antialiased bicubic downscaling by ``scale``.

    Centred on the array (``4s x 4s`` at even factors, whose centre falls between pixels);
    :func:`align_kernel` turns it into an aligned kernel without interpolation, with which
    :func:`zoomsr.ops.degrade.kernels.blur_downsample` matches ``imresize`` (KernelGAN's
    bicubic prior).
    """
    n = 4 * scale + scale % 2  # odd factors sample on a pixel: an odd number of taps
    offsets = np.arange(n) - (n - 1) / 2.0
    w = cubic(offsets / scale) / scale
    w = w / w.sum()
    return np.outer(w, w).astype(np.float32)


def random_blindsr_kernel(
    scale: int, generator: torch.Generator, size: int | None = None, noise: float = 0.4
) -> tuple[np.ndarray, dict]:
    """A random anisotropic Gaussian SR kernel as in DIV2KRK (KernelGAN's test set).

    The procedure of the KernelGAN authors' dataset generator (BlindSR_dataset_generator):
    covariance eigenvalues ``λ1, λ2 ~ U(0.175 s, 2.5 s)`` (U(0.35, 5) at x2), angle
    ``θ ~ U(0, π)``, then multiplicative per-tap noise ``U(1 - noise, 1 + noise)``;
    ``size x size`` with size ``4s + 3`` (11 at x2, as in the paper). Returns the aligned
    kernel (sum 1) and its parameters.
    """
    size = size or 4 * scale + 3
    u = torch.rand(3 + size * size, generator=generator, dtype=torch.float64).numpy()
    lo, hi = 0.175 * scale, 2.5 * scale
    l1, l2 = lo + u[0] * (hi - lo), lo + u[1] * (hi - lo)
    theta = float(u[2] * math.pi)
    # Drawn aligned (mean (s-1)/2 off the middle), so that alignment moves it little.
    k = anisotropic_gaussian_kernel(size, math.sqrt(l1), math.sqrt(l2), theta, (scale - 1) / 2.0)
    k = k.numpy().astype(np.float64)
    k = k * (1.0 + noise * (2.0 * u[3:].reshape(size, size) - 1.0))
    k = align_kernel(k / k.sum(), scale)
    return k, {"lambda1": float(l1), "lambda2": float(l2), "theta": theta, "noise": noise}


def centre_of_mass(k: np.ndarray) -> tuple[float, float]:
    """(row, col) centre of mass of a kernel (of its signed values, as scipy computes it)."""
    total = float(k.sum())
    rows, cols = np.arange(k.shape[0]), np.arange(k.shape[1])
    return float(k.sum(1) @ rows) / total, float(k.sum(0) @ cols) / total


def _shift(k: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift a kernel by sub-pixel (dy, dx) with MATLAB's cubic (a = -0.5), zero outside.

    Written out (separable matrices) because a = -0.5 reproduces linear functions, so the
    centre of mass moves by exactly (dy, dx); OpenCV's cubic (a = -0.75) does not.
    """
    pad = math.ceil(max(abs(dy), abs(dx))) + 2
    k = np.pad(k.astype(np.float64), pad)
    idx = np.arange(k.shape[0], dtype=np.float64)
    rows = cubic(idx[:, None] - dy - idx[None, :])
    cols = cubic(idx[:, None] - dx - idx[None, :])
    return rows @ k @ cols.T


def _odd_square(k: np.ndarray) -> np.ndarray:
    n = max(k.shape)
    n += 1 - n % 2
    py, px = n - k.shape[0], n - k.shape[1]
    return np.pad(k, ((py // 2, py - py // 2), (px // 2, px - px // 2)))


def trim_kernel(k: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Drop outer rings (one pixel on every side at a time) that hold less than ``tol`` of the mass."""
    total = float(np.abs(k).sum())
    while k.shape[0] > 3 and k.shape[1] > 3:
        inner = k[1:-1, 1:-1]
        if total - float(np.abs(inner).sum()) > tol * total:
            break
        k = inner
    return k


def _place_centre_of_mass(k: np.ndarray, offset: float) -> np.ndarray:
    k = _odd_square(np.asarray(k, dtype=np.float64))
    cy, cx = centre_of_mass(k)
    want = (k.shape[0] - 1) / 2.0 + offset
    dy, dx = want - cy, want - cx
    if max(abs(dy), abs(dx)) > 1e-3:  # already there: no interpolation
        k = _shift(k, dy, dx)
    return trim_kernel((k / k.sum()).astype(np.float32))


def centre_kernel(k: np.ndarray) -> np.ndarray:
    """Odd-sized square kernel (sum 1) with its centre of mass on the middle pixel."""
    return _place_centre_of_mass(k, 0.0)


def align_kernel(k: np.ndarray, scale: int) -> np.ndarray:
    """Kernel ready for ``blur_downsample``: centre of mass at ``c + (s-1)/2``.

    With padding ``c = size // 2`` the strided correlation then puts LR pixel ``i`` at HR
    position ``s*i + (s-1)/2`` (MATLAB's grid); it is the ZSSR/KernelGAN ``kernel_shift``.
    """
    return _place_centre_of_mass(k, (scale - 1) / 2.0)


def analytic_x4_kernel(k2: np.ndarray) -> np.ndarray:
    """The x4 kernel implied by applying the x2 kernel twice (KernelGAN, appendix), aligned.

    ``k4 = sum_{r,c} k2[r, c] * k2`` placed at ``(2r, 2c)``: a stride-2 transposed convolution
    of ``k2`` with itself; the faint rim (``size // 2`` on each side) is cropped.
    """
    t = torch.from_numpy(np.asarray(k2, dtype=np.float64))[None, None]
    big = F.conv_transpose2d(t, t, stride=2)[0, 0].numpy()
    crop = k2.shape[0] // 2
    big = big[crop:-crop, crop:-crop] if crop else big
    return align_kernel(big / big.sum(), 4)


def zeroize_negligible(k: np.ndarray, n: int = 40) -> np.ndarray:
    """KernelGAN's clean-up: subtract 0.75 x the (n+1)-th largest tap, clip at 0, renormalise."""
    flat = np.sort(k.ravel())
    floor = 0.75 * flat[-min(n, flat.size - 1) - 1]
    out = np.clip(k - floor, 0.0, None)
    return (out / out.sum()).astype(np.float32)


def kernel_similarity(a: np.ndarray, b: np.ndarray, max_shift: int = 1) -> float:
    """Normalised cross-correlation of two centred kernels, the best over shifts of ±max_shift."""
    a, b = centre_kernel(a).astype(np.float64), centre_kernel(b).astype(np.float64)
    n = max(a.shape[0], b.shape[0]) + 2 * max_shift
    a = np.pad(a, (n - a.shape[0]) // 2)
    b = np.pad(b, (n - b.shape[0]) // 2)
    best = -1.0
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            s = np.roll(b, (dy, dx), axis=(0, 1))
            den = float(np.sqrt((a * a).sum() * (s * s).sum()))
            best = max(best, float((a * s).sum()) / den if den > 0 else -1.0)
    return best
