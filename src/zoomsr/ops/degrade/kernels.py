"""Blur kernels and blurring of batched images with per-sample kernels.

Every kernel is a square, odd-sized ``(k, k)`` float32 tensor that sums to one, centred on its
middle pixel; coordinates are ``x`` = column offset and ``y`` = row offset from the centre.
Kernel functions broadcast: each parameter may be a float or a tensor of shape ``(N,)`` (or any
shape ``S``), and the result is ``(*S, k, k)`` — one kernel per sample, ready for :func:`blur`.

Rotations (``theta``, ``angle``) are in radians from the ``x`` axis towards ``y`` (clockwise on
screen, since rows go down). Kernels are applied by correlation, as ``cv2.filter2D`` and the
BSRGAN / Real-ESRGAN code do (the same as convolution for the symmetric kernels; a motion
kernel is mirrored).

Written with torch rather than taken from a library so that one batched call makes ``N``
different kernels and :func:`blur` applies them in one grouped convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoomsr.errors import ZoomsrError

Param = float | torch.Tensor


def _t(*params: Param) -> list[torch.Tensor]:
    """Parameters as float64 tensors broadcast to one shape, with two trailing axes for (y, x)."""
    ts = torch.broadcast_tensors(*(torch.as_tensor(p, dtype=torch.float64) for p in params))
    return [t[..., None, None] for t in ts]


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if size < 1 or size % 2 == 0:
        raise ZoomsrError(f"kernel size must be a positive odd number, got {size}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    return y, x


def _normalise(k: torch.Tensor) -> torch.Tensor:
    return (k / k.sum(dim=(-2, -1), keepdim=True)).float()


def gaussian_covariance(sigma_x: Param, sigma_y: Param, theta: Param) -> torch.Tensor:
    """``R(θ) diag(σx², σy²) R(θ)ᵀ`` as a float64 ``(*S, 2, 2)`` tensor (rows/cols = x, y)."""
    sx, sy, th = (t[..., 0, 0] for t in _t(sigma_x, sigma_y, theta))
    c, s = torch.cos(th), torch.sin(th)
    a = c * c * sx**2 + s * s * sy**2
    b = c * s * (sx**2 - sy**2)
    d = s * s * sx**2 + c * c * sy**2
    return torch.stack([torch.stack([a, b], -1), torch.stack([b, d], -1)], -2)


def _quad_form(size: int, cov: torch.Tensor, offset: Param = 0.0) -> torch.Tensor:
    """``(p - m)ᵀ Σ⁻¹ (p - m)`` at every kernel position ``p = (x, y)``, ``m = (offset, offset)``."""
    y, x = _grid(size)
    (m,) = _t(offset)
    x, y = x - m, y - m
    inv = torch.linalg.inv(cov.to(torch.float64))[..., None, None, :, :]
    return inv[..., 0, 0] * x * x + 2 * inv[..., 0, 1] * x * y + inv[..., 1, 1] * y * y


def gaussian_kernel_from_covariance(
    size: int, cov: torch.Tensor, offset: Param = 0.0
) -> torch.Tensor:
    """A Gaussian kernel with covariance ``cov`` ``(*S, 2, 2)`` (in pixels², axes x, y).

    ``offset`` moves its mean by that many pixels along both ``x`` and ``y``: ``(s - 1) / 2``
    gives a kernel for :func:`blur_downsample` whose samples fall on MATLAB's grid.
    """
    return _normalise(torch.exp(-0.5 * _quad_form(size, cov, offset)))


def isotropic_gaussian_kernel(size: int, sigma: Param) -> torch.Tensor:
    """A Gaussian kernel of standard deviation ``sigma`` pixels."""
    return anisotropic_gaussian_kernel(size, sigma, sigma, 0.0)


def anisotropic_gaussian_kernel(
    size: int, sigma_x: Param, sigma_y: Param, theta: Param, offset: Param = 0.0
) -> torch.Tensor:
    """A Gaussian kernel with standard deviations ``sigma_x`` along the axis at angle ``theta``
    and ``sigma_y`` across it: covariance :func:`gaussian_covariance`; ``offset`` moves its mean
    as in :func:`gaussian_kernel_from_covariance`."""
    cov = gaussian_covariance(sigma_x, sigma_y, theta)
    return gaussian_kernel_from_covariance(size, cov, offset)


def generalized_gaussian_kernel(
    size: int, sigma_x: Param, sigma_y: Param, theta: Param, beta: Param
) -> torch.Tensor:
    """``exp(-½ (pᵀΣ⁻¹p)^β)`` (Real-ESRGAN eq. 2): ``beta`` < 1 a sharper peak and heavier
    tails, > 1 a flatter top; ``beta = 1`` is :func:`anisotropic_gaussian_kernel`."""
    (b,) = _t(beta)
    q = _quad_form(size, gaussian_covariance(sigma_x, sigma_y, theta))
    return _normalise(torch.exp(-0.5 * q.pow(b)))


def plateau_kernel(
    size: int, sigma_x: Param, sigma_y: Param, theta: Param, beta: Param
) -> torch.Tensor:
    """``1 / (1 + (pᵀΣ⁻¹p)^β)`` (Real-ESRGAN's plateau-shaped kernel): flat top, heavy tails."""
    (b,) = _t(beta)
    q = _quad_form(size, gaussian_covariance(sigma_x, sigma_y, theta))
    return _normalise(1.0 / (1.0 + q.pow(b)))


def motion_kernel(size: int, length: Param, angle: Param) -> torch.Tensor:
    """Uniform linear motion of ``length`` pixels through the centre at ``angle``.

    Each tap's weight is ``max(0, 1 - d)`` with ``d`` its distance to the motion segment, so the
    line is antialiased and a sub-pixel ``length`` still makes a valid kernel (``0`` = identity).
    """
    y, x = _grid(size)
    length, angle = _t(length, angle)
    half = length.clamp(min=0) / 2
    ux, uy = torch.cos(angle), torch.sin(angle)
    along = (x * ux + y * uy).clamp(-half, half)  # closest point of the segment
    d = torch.hypot(x - along * ux, y - along * uy)
    return _normalise((1 - d).clamp(min=0))


def sinc_kernel(size: int, cutoff: Param) -> torch.Tensor:
    """Circular low-pass (2-D sinc, "ringing") kernel with cutoff ``cutoff`` rad/pixel in (0, π].

    The ideal filter ``ω J1(ω r) / (2π r)`` (value ``ω² / 4π`` at the centre), truncated to the
    window and normalised (Real-ESRGAN §3.3). Its taps may be negative; it still sums to one.
    """
    y, x = _grid(size)
    (w,) = _t(cutoff)
    r = torch.hypot(x, y)
    safe = torch.where(r > 0, r, torch.ones_like(r))
    k = torch.where(
        r > 0, w * torch.special.bessel_j1(w * safe) / (2 * math.pi * safe), w * w / (4 * math.pi)
    )
    return _normalise(k)


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a ``(..., k, k)`` kernel to ``(..., size, size)`` (kernels of several sizes in a batch)."""
    k = kernel.shape[-1]
    if size < k or (size - k) % 2:
        raise ZoomsrError(f"cannot pad a {k}x{k} kernel to {size}x{size}")
    p = (size - k) // 2
    return F.pad(kernel, (p, p, p, p))


def truncate_kernel(kernel: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
    """Zero the taps of ``(..., K, K)`` kernels outside their centre ``size x size`` and
    renormalise: per-sample kernel sizes in one ``K x K`` batch (``size`` odd, ``(...)``-shaped)."""
    big = kernel.shape[-1]
    r = (torch.arange(big) - big // 2).abs()
    half = torch.as_tensor(size)[..., None, None] // 2
    inside = (r[:, None] <= half) & (r[None, :] <= half)
    k = kernel * inside.to(kernel.dtype)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def _per_sample(x: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The grouped-conv weight ``(N*C, 1, k, k)`` for a shared ``(k, k)`` or per-sample ``(N, k, k)``."""
    n, c = x.shape[:2]
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    if kernel.dim() == 2:
        kernel = kernel.expand(n, -1, -1)
    if kernel.dim() != 3 or kernel.shape[0] != n:
        raise ZoomsrError(
            f"kernel of shape {tuple(kernel.shape)} for a batch of {n}: give (k, k) or ({n}, k, k)"
        )
    return kernel.repeat_interleave(c, dim=0)[:, None], n * c


def _pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    # Reflection needs the pad smaller than the image; tiny images fall back to replication.
    h, w = x.shape[-2:]
    mode = "reflect" if max(left, right) < w and max(top, bottom) < h else "replicate"
    return F.pad(x, (left, right, top, bottom), mode=mode)


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate ``x`` ``(N, C, H, W)`` with ``kernel`` ``(k, k)`` or per-sample ``(N, k, k)``.

    Borders are mirrored (reflect); the output has the input's size.
    """
    n, c, h, w = x.shape
    weight, groups = _per_sample(x, kernel)
    p = kernel.shape[-1] // 2
    xp = _pad(x.reshape(1, n * c, h, w), p, p, p, p)
    return F.conv2d(xp, weight, groups=groups).reshape(n, c, h, w)


def blur_downsample(x: torch.Tensor, kernel: torch.Tensor, scale: int) -> torch.Tensor:
    """``(x ⋆ kernel)[::s, ::s]``: the classical degradation with a given kernel, ``ceil(H/s)`` rows.

    ``kernel`` is ``(k, k)`` or per-sample ``(N, k, k)``; padding is ``k // 2`` (mirrored), so
    LR pixel ``i`` is the kernel centred on HR pixel ``s*i``. For MATLAB's grid (LR pixel ``i``
    at HR ``s*i + (s-1)/2``, as ZSSR/KernelGAN use) shift the kernel's centre of mass by
    ``(s-1)/2`` first (``zoomsr.models.zeroshot.kernels.align_kernel``).
    """
    n, c, h, w = x.shape
    if int(scale) != scale or scale < 1:
        raise ZoomsrError(f"blur_downsample needs an integer scale >= 1, got {scale}")
    s, size = int(scale), kernel.shape[-1]
    weight, groups = _per_sample(x, kernel)
    p = size // 2
    out_h, out_w = math.ceil(h / s), math.ceil(w / s)
    extra_h = max(0, (out_h - 1) * s + size - p - h)
    extra_w = max(0, (out_w - 1) * s + size - p - w)
    xp = _pad(x.reshape(1, n * c, h, w), p, extra_w, p, extra_h)
    y = F.conv2d(xp, weight, stride=s, groups=groups)[..., :out_h, :out_w]
    return y.reshape(n, c, out_h, out_w)
