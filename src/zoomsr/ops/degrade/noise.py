"""Additive noise on batched images, one noise level per sample.

Noise is drawn on the CPU from the given generator (then moved to the images' device), so a
seed gives the same noise on any device. Results are clipped to [0, 1].
"""

from __future__ import annotations

import math

import torch

from zoomsr.ops.color import quantize, to_gray

Param = float | torch.Tensor


def _per_sample(v: Param | bool, n: int, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(v, dtype=dtype).expand(n).reshape(n, 1, 1, 1)


def _randn(shape, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=g).to(device=like.device, dtype=like.dtype)


def gaussian_noise(
    x: torch.Tensor, sigma: Param, g: torch.Generator, gray: Param | bool = False
) -> torch.Tensor:
    """``x + N(0, σ²)``: per-channel noise, or the same noise on every channel where ``gray``.

    ``sigma`` (on the [0, 1] scale: 25/255 is "level 25") and ``gray`` are scalars or ``(N,)``.
    """
    n, c, h, w = x.shape
    colour = _randn((n, c, h, w), g, x)
    mono = _randn((n, 1, h, w), g, x).expand(n, c, h, w)
    gray = _per_sample(gray, n, torch.bool).to(x.device)
    noise = torch.where(gray, mono, colour) * _per_sample(sigma, n).to(x)
    return (x + noise).clamp(0, 1)


def correlated_gaussian_noise(
    x: torch.Tensor, cov: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """``x + N(0, Σ)`` with a 3 x 3 colour covariance per sample ``cov`` ``(N, 3, 3)`` (or shared).

    Σ may be singular: its square root comes from an eigen-decomposition, not Cholesky.
    """
    n, c, h, w = x.shape
    cov = torch.as_tensor(cov, dtype=torch.float64).expand(n, c, c)
    vals, vecs = torch.linalg.eigh(cov)
    root = vecs @ torch.diag_embed(vals.clamp(min=0).sqrt()) @ vecs.transpose(-1, -2)
    z = torch.randn((n, c, h * w), generator=g, dtype=torch.float64)
    noise = (root @ z).reshape(n, c, h, w).to(device=x.device, dtype=x.dtype)
    return (x + noise).clamp(0, 1)


def poisson_noise(
    x: torch.Tensor, scale: Param, g: torch.Generator, gray: Param | bool = False
) -> torch.Tensor:
    """Shot noise as Real-ESRGAN adds it: ``x + scale * (Poisson(v x) / v - x)``.

    ``v`` is the number of distinct 8-bit levels of each image rounded up to a power of two
    (256 for a natural photo), so the noise looks like photon counting at that bit depth.
    Where ``gray``, the noise of the luma (BT.601) is added to every channel.
    """
    n = x.shape[0]
    q = quantize(x.detach().float().cpu())
    levels = [2 ** math.ceil(math.log2(max(2, len(torch.unique(q[i]))))) for i in range(n)]
    v = torch.tensor(levels, dtype=torch.float32).reshape(n, 1, 1, 1)
    y = quantize(to_gray(q))
    colour = torch.poisson(q * v, generator=g) / v - q
    mono = (torch.poisson(y * v, generator=g) / v - y).expand_as(q)
    gray = _per_sample(gray, n, torch.bool)
    noise = torch.where(gray, mono, colour) * _per_sample(scale, n).float()
    return (x + noise.to(x)).clamp(0, 1)


def sensor_noise_levels(
    g: torch.Generator, n: int, shot: tuple[float, float] = (1e-4, 1.2e-2)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shot and read noise variances of ``n`` random sensors (Brooks et al. 2019, §3.2).

    ``shot`` is log-uniform in the range; the read variance follows their log-linear fit to real
    sensors, ``log read = 2.18 log shot + 1.20 + N(0, 0.26²)``.
    """
    log_shot = math.log(shot[0]) + (math.log(shot[1]) - math.log(shot[0])) * torch.rand(
        n, generator=g, dtype=torch.float64
    )
    log_read = 2.18 * log_shot + 1.20 + 0.26 * torch.randn(n, generator=g, dtype=torch.float64)
    return log_shot.exp(), log_read.exp()


def heteroscedastic_noise(
    x: torch.Tensor, shot: Param, read: Param, g: torch.Generator
) -> torch.Tensor:
    """``x + N(0, shot · x + read)``: the Gaussian approximation of shot + read noise of a raw
    sensor (linear values). Not clipped, as raw values are clipped after white balance."""
    n = x.shape[0]
    var = _per_sample(shot, n).to(x) * x.clamp(min=0) + _per_sample(read, n).to(x)
    return x + _randn(x.shape, g, x) * var.sqrt()
