"""The BSRGAN degradation model: blur, blur, down-sampling, noise, JPEG and camera noise in a
random order, then JPEG (Zhang et al. 2021, "Designing a Practical Degradation Model for Deep
Blind Image Super-Resolution", ICCV, §3 and its official ``degradation_bsrgan``).

In a batch, the order and the down-sampling choices (factors, interpolation) are drawn once
for the batch, as they fix the image sizes; kernels, noise, JPEG qualities and whether each
optional step applies are drawn per sample. The trainer degrades one patch at a time, so there
every draw is per image, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from zoomsr.errors import ZoomsrError
from zoomsr.ops.degrade import _random as rnd
from zoomsr.ops.degrade.camera import camera_noise
from zoomsr.ops.degrade.jpeg import jpeg_compress
from zoomsr.ops.degrade.kernels import (
    anisotropic_gaussian_kernel,
    blur,
    blur_downsample,
    gaussian_covariance,
    gaussian_kernel_from_covariance,
    truncate_kernel,
)
from zoomsr.ops.degrade.noise import correlated_gaussian_noise, gaussian_noise
from zoomsr.ops.degrade.resample import resize, scaled_size


@dataclass
class BSRGANConfig:
    """Ranges of the BSRGAN model (uniform; ``None`` = the published scale-dependent range).

    Sigmas are in pixels of the image the step sees; ``aniso_variance`` bounds the eigenvalues
    of the anisotropic kernels' covariance (pixels²); noise levels are on the 0..255 scale.
    """

    kernel_size: tuple[int, int] = (7, 25)  # odd sizes
    aniso_prob: float = 0.5  # each blur: anisotropic, else isotropic
    iso_sigma: tuple[float, float] | None = None  # None: (0.1, 2 + 0.2 s)
    aniso_variance: tuple[float, float] | None = None  # None: (0.5, 4 + s)
    scale2_prob: float = 0.25  # x4: first halve the image (then the rest works at x2)
    resize_prob: float = 0.75  # down-sampling 2: random resize, else shifted blur + nearest
    resize_factor: tuple[float, float] | None = None  # None: (1, 2 s)
    nearest_sigma: tuple[float, float] | None = None  # None: (0.1, 0.6 s), 25 x 25 kernel
    modes: tuple[str, ...] = ("bilinear", "bicubic", "area")
    noise_level: tuple[int, int] = (2, 25)  # Gaussian sigma x 255, integers
    noise_kind_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)  # colour, gray, correlated
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[int, int] = (30, 95)  # integers, inclusive
    camera_prob: float = 0.25
    camera_shot: tuple[float, float] = (1e-4, 1.2e-2)  # shot-noise variance, log-uniform

    def resolved(self, s: int) -> BSRGANConfig:
        """A copy with every ``None`` range replaced by the published one at scale ``s``."""
        d = dict(self.__dict__)
        defaults = {
            "iso_sigma": (0.1, 2 + 0.2 * s),
            "aniso_variance": (0.5, 4.0 + s),
            "resize_factor": (1.0, 2.0 * s),
            "nearest_sigma": (0.1, 0.6 * s),
        }
        for k, v in defaults.items():
            d[k] = tuple(d[k]) if d[k] is not None else v
        return BSRGANConfig(**d)


def _random_blur(
    x: torch.Tensor, g: torch.Generator, cfg: BSRGANConfig
) -> tuple[torch.Tensor, dict]:
    n = x.shape[0]
    big = cfg.kernel_size[1]
    size = rnd.odd_size(g, *cfg.kernel_size, n)
    aniso = rnd.bernoulli(g, cfg.aniso_prob, n)
    sigma = rnd.uniform(g, *cfg.iso_sigma, n)
    lam1, lam2 = rnd.uniform(g, *cfg.aniso_variance, n), rnd.uniform(g, *cfg.aniso_variance, n)
    theta = rnd.uniform(g, 0.0, math.pi, n)
    k_iso = anisotropic_gaussian_kernel(big, sigma, sigma, 0.0)
    k_aniso = gaussian_kernel_from_covariance(
        big, gaussian_covariance(lam1.sqrt(), lam2.sqrt(), theta)
    )
    k = truncate_kernel(torch.where(aniso[:, None, None], k_aniso, k_iso), size)
    record = {
        "op": "blur",
        "kernel": ["anisotropic_gaussian" if a else "isotropic_gaussian" for a in aniso.tolist()],
        "size": size.tolist(),
        "sigma": [None if a else s for a, s in zip(aniso.tolist(), sigma.tolist(), strict=True)],
        "variances": [
            [a1, a2] if a else None
            for a, a1, a2 in zip(aniso.tolist(), lam1.tolist(), lam2.tolist(), strict=True)
        ],
        "theta": [t if a else None for a, t in zip(aniso.tolist(), theta.tolist(), strict=True)],
    }
    return blur(x, k).clamp(0, 1), record


def _random_noise(
    x: torch.Tensor, g: torch.Generator, cfg: BSRGANConfig
) -> tuple[torch.Tensor, dict]:
    n, c = x.shape[:2]
    level = rnd.randint(g, *cfg.noise_level, n)
    kind = rnd.choice(g, cfg.noise_kind_probs, n)
    sigma = level.double() / 255
    white = gaussian_noise(x, sigma, g, gray=kind == 1)
    # Correlated colour noise: Σ = L² Uᵀ D U with a random orthonormal U, D = diag(U(0, 1)³) and
    # L the largest level (as the official code does). Its elementwise |.| is dropped: it can
    # make Σ indefinite.
    u, _ = torch.linalg.qr(torch.rand((n, c, c), generator=g, dtype=torch.float64))
    d = torch.diag_embed(torch.rand((n, c), generator=g, dtype=torch.float64))
    cov = (cfg.noise_level[1] / 255) ** 2 * u.transpose(-1, -2) @ d @ u
    correlated = correlated_gaussian_noise(x, cov, g)
    out = torch.where((kind == 2).to(x.device)[:, None, None, None], correlated, white)
    names = ("colour", "gray", "correlated")
    record = {
        "op": "gaussian_noise",
        "kind": [names[k] for k in kind.tolist()],
        "level": level.tolist(),
        "covariance": [cov[i].tolist() if k == 2 else None for i, k in enumerate(kind.tolist())],
    }
    return out, record


def _maybe_jpeg(x, g, prob: float, quality: tuple[int, int]) -> tuple[torch.Tensor, dict]:
    n = x.shape[0]
    q = rnd.randint(g, *quality, n)
    apply = rnd.bernoulli(g, prob, n)
    out = x.clone()
    if apply.any():
        idx = apply.nonzero()[:, 0].to(x.device)
        out[idx] = jpeg_compress(x[idx], q[apply])
    return out, {"op": "jpeg", "applied": apply.tolist(), "quality": q.tolist()}


def _maybe_camera(x, g, cfg: BSRGANConfig) -> tuple[torch.Tensor, dict]:
    n = x.shape[0]
    apply = rnd.bernoulli(g, cfg.camera_prob, n)
    record: dict = {"op": "camera_noise", "applied": apply.tolist()}
    if not apply.any():
        return x, record
    idx = apply.nonzero()[:, 0]
    noisy, params = camera_noise(x[idx.to(x.device)], g, cfg.camera_shot)
    out = x.clone()
    out[idx.to(x.device)] = noisy
    for key, values in params.items():  # per applied sample -> per sample (None elsewhere)
        if key != "op":
            full = [None] * n
            for i, v in zip(idx.tolist(), values, strict=True):
                full[i] = v
            record[key] = full
    return out, record


def _random_mode(g: torch.Generator, modes) -> str:
    return modes[int(rnd.randint(g, 0, len(modes) - 1, 1))]


def bsrgan(
    hr: torch.Tensor, scale: int, g: torch.Generator, cfg: BSRGANConfig | None = None
) -> tuple[torch.Tensor, dict]:
    """Degrade ``hr`` ``(N, 3, H, W)`` (``H``, ``W`` multiples of ``scale``) to ``(N, 3, H/s, W/s)``
    on the 8-bit grid; returns ``(lr, record)``."""
    s = int(scale)
    n, _, h, w = hr.shape
    if h % s or w % s:
        raise ZoomsrError(f"bsrgan: image size {w}x{h} is not a multiple of the scale {s}")
    base = cfg or BSRGANConfig()
    target = (h // s, w // s)
    x, steps, sf = hr.clamp(0, 1), [], s
    if s == 4 and bool(rnd.bernoulli(g, base.scale2_prob, 1)):  # down-sampling 1: halve first
        mode = "bicubic" if bool(rnd.bernoulli(g, 0.5, 1)) else _random_mode(g, base.modes)
        x, sf = resize(x, (h // 2, w // 2), mode).clamp(0, 1), 2
        steps.append({"op": "resize", "size": [h // 2, w // 2], "mode": mode})
    cfg = base.resolved(sf)  # the rest works at the remaining factor, as the official code
    order = rnd.permutation(g, 7)
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:  # down-sampling 2 before down-sampling 3 (to the final size)
        order[i2], order[i3] = order[i3], order[i2]
    for op in order:
        if op in (0, 1):
            x, rec = _random_blur(x, g, cfg)
        elif op == 2:
            if bool(rnd.bernoulli(g, cfg.resize_prob, 1)):
                factor = float(rnd.uniform(g, *cfg.resize_factor, 1))
                mode = _random_mode(g, cfg.modes)
                size = scaled_size(x.shape[-2:], 1 / factor)
                x = resize(x, size, mode).clamp(0, 1)
                rec = {"op": "resize", "size": list(size), "mode": mode, "factor": factor}
            else:  # Gaussian blur centred on MATLAB's grid, then every sf-th pixel
                sig = rnd.uniform(g, *cfg.nearest_sigma, n)
                cov = gaussian_covariance(sig, sig, 0.0)
                k = gaussian_kernel_from_covariance(25, cov, offset=(sf - 1) / 2)
                x = blur_downsample(x, k, sf).clamp(0, 1)
                rec = {"op": "blur_nearest", "factor": sf, "sigma": sig.tolist(), "size": 25}
        elif op == 3:
            mode = _random_mode(g, cfg.modes)
            x = resize(x, target, mode).clamp(0, 1)
            rec = {"op": "resize", "size": list(target), "mode": mode}
        elif op == 4:
            x, rec = _random_noise(x, g, cfg)
        elif op == 5:
            x, rec = _maybe_jpeg(x, g, cfg.jpeg_prob, cfg.jpeg_quality)
        else:
            x, rec = _maybe_camera(x, g, cfg)
        steps.append(rec)
    x, rec = _maybe_jpeg(x, g, 1.0, cfg.jpeg_quality)  # the final JPEG, always
    steps.append(rec)
    record = {"preset": "bsrgan", "scale": s, "hr_size": [h, w], "order": order, "steps": steps}
    return x, record
