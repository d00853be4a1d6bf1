"""The Real-ESRGAN "high-order" degradation: the classical blur -> resize -> noise -> JPEG
chain applied twice, then a final resize, 2-D sinc filter and JPEG in random order (Wang et al.
2021, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW, §3, with the ranges of its published ``train_realesrgan_x4plus.yml``).

As in the official GPU implementation, a batch shares the resize factors and modes; kernels,
noise and JPEG qualities are per sample. The GT sharpening (USM) that Real-ESRGAN applies to its
training targets is not part of the degradation and is not done here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from zoomsr.ops.degrade import _random as rnd
from zoomsr.ops.degrade.jpeg import jpeg_compress
from zoomsr.ops.degrade.kernels import (
    blur,
    generalized_gaussian_kernel,
    plateau_kernel,
    sinc_kernel,
    truncate_kernel,
)
from zoomsr.ops.degrade.noise import gaussian_noise, poisson_noise
from zoomsr.ops.degrade.resample import resize

KERNEL_KINDS = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


@dataclass
class StageConfig:
    """One blur -> resize -> noise -> JPEG stage; ranges are uniform."""

    blur_prob: float = 1.0
    kernel_size: tuple[int, int] = (7, 21)  # odd sizes
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # KERNEL_KINDS
    sigma: tuple[float, float] = (0.2, 3.0)  # per axis, pixels
    betag: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap: tuple[float, float] = (1.0, 2.0)  # plateau shape
    sinc_prob: float = 0.1  # the blur is a 2-D sinc instead
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma x 255
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)


def _second_stage() -> StageConfig:
    return StageConfig(
        blur_prob=0.8,
        sigma=(0.2, 1.5),
        resize_probs=(0.3, 0.4, 0.3),
        resize_range=(0.3, 1.2),
        noise_range=(1.0, 25.0),
        poisson_scale=(0.05, 2.5),
    )


@dataclass
class RealESRGANConfig:
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = field(default_factory=_second_stage)
    final_sinc_prob: float = 0.8
    final_kernel_size: tuple[int, int] = (7, 21)
    final_cutoff: tuple[float, float] = (math.pi / 3, math.pi)
    modes: tuple[str, ...] = ("area", "bilinear", "bicubic")


def random_mixed_kernels(g: torch.Generator, n: int, cfg: StageConfig) -> tuple[torch.Tensor, dict]:
    """``n`` kernels ``(n, K, K)`` (``K`` the largest size) drawn as Real-ESRGAN draws its blur.

    Size odd in ``kernel_size``; with ``sinc_prob`` a sinc of cutoff ``U(π/3, π)`` (``U(π/5, π)``
    from size 13 up), else a kind from ``kernel_probs``: Gaussian, generalized Gaussian or
    plateau, isotropic (σx = σy, no rotation) or anisotropic (σx, σy independent, rotation
    ``U(-π, π)``). Shape β is ``U(lo, 1)`` or ``U(1, hi)`` with even odds, as the official code.
    """
    big = cfg.kernel_size[1]
    size = rnd.odd_size(g, *cfg.kernel_size, n)
    is_sinc = rnd.bernoulli(g, cfg.sinc_prob, n)
    cutoff = torch.where(
        size < 13, rnd.uniform(g, math.pi / 3, math.pi, n), rnd.uniform(g, math.pi / 5, math.pi, n)
    )
    kind = rnd.choice(g, cfg.kernel_probs, n)
    sx, sy = rnd.uniform(g, *cfg.sigma, n), rnd.uniform(g, *cfg.sigma, n)
    theta = rnd.uniform(g, -math.pi, math.pi, n)
    low = rnd.bernoulli(g, 0.5, n)
    betag = torch.where(low, rnd.uniform(g, cfg.betag[0], 1, n), rnd.uniform(g, 1, cfg.betag[1], n))
    betap = torch.where(low, rnd.uniform(g, cfg.betap[0], 1, n), rnd.uniform(g, 1, cfg.betap[1], n))

    iso = kind % 2 == 0
    sy = torch.where(iso, sx, sy)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    plateau = kind >= 4
    beta = torch.where(kind < 2, torch.ones_like(betag), torch.where(plateau, betap, betag))
    gauss = generalized_gaussian_kernel(big, sx, sy, theta, beta)
    k = torch.where(plateau[:, None, None], plateau_kernel(big, sx, sy, theta, beta), gauss)
    k = torch.where(is_sinc[:, None, None], sinc_kernel(big, cutoff), k)
    k = truncate_kernel(k, size)

    record = {"size": size.tolist(), "kernel": [], "params": []}
    for i in range(n):
        if is_sinc[i]:
            record["kernel"].append("sinc")
            record["params"].append({"cutoff": float(cutoff[i])})
        else:
            record["kernel"].append(KERNEL_KINDS[int(kind[i])])
            p = {"sigma_x": float(sx[i]), "sigma_y": float(sy[i]), "theta": float(theta[i])}
            if int(kind[i]) >= 2:
                p["beta"] = float(beta[i])
            record["params"].append(p)
    return k, record


def _resize_factor(g: torch.Generator, cfg: StageConfig) -> float:
    way = int(rnd.choice(g, cfg.resize_probs, 1))
    if way == 0:
        return float(rnd.uniform(g, 1.0, cfg.resize_range[1], 1))
    if way == 1:
        return float(rnd.uniform(g, cfg.resize_range[0], 1.0, 1))
    return 1.0


def _mode(g: torch.Generator, modes) -> str:
    return modes[int(rnd.randint(g, 0, len(modes) - 1, 1))]


def _noise(x: torch.Tensor, g: torch.Generator, cfg: StageConfig) -> tuple[torch.Tensor, dict]:
    n = x.shape[0]
    use_gauss = rnd.bernoulli(g, cfg.gaussian_noise_prob, n)
    gray = rnd.bernoulli(g, cfg.gray_noise_prob, n)
    sigma = rnd.uniform(g, *cfg.noise_range, n) / 255
    pscale = rnd.uniform(g, *cfg.poisson_scale, n)
    out = torch.empty_like(x)
    gi, pi = use_gauss.nonzero()[:, 0], (~use_gauss).nonzero()[:, 0]
    if len(gi):
        out[gi.to(x.device)] = gaussian_noise(x[gi.to(x.device)], sigma[gi], g, gray[gi])
    if len(pi):
        out[pi.to(x.device)] = poisson_noise(x[pi.to(x.device)], pscale[pi], g, gray[pi])
    record = {
        "op": "noise",
        "kind": ["gaussian" if u else "poisson" for u in use_gauss.tolist()],
        "gray": gray.tolist(),
        "sigma": [
            s * 255 if u else None for s, u in zip(sigma.tolist(), use_gauss.tolist(), strict=True)
        ],
        "poisson_scale": [
            None if u else p for p, u in zip(pscale.tolist(), use_gauss.tolist(), strict=True)
        ],
    }
    return out, record


def _jpeg(
    x: torch.Tensor, g: torch.Generator, quality: tuple[int, int]
) -> tuple[torch.Tensor, dict]:
    q = rnd.randint(g, *quality, x.shape[0])
    return jpeg_compress(x.clamp(0, 1), q), {"op": "jpeg", "quality": q.tolist()}


def _stage(x, g, cfg: StageConfig, base_hw, modes) -> tuple[torch.Tensor, list[dict]]:
    steps = []
    n = x.shape[0]
    apply = rnd.bernoulli(g, cfg.blur_prob, n)
    k, rec = random_mixed_kernels(g, n, cfg)
    if apply.any():
        blurred = blur(x, k)
        x = torch.where(apply.to(x.device)[:, None, None, None], blurred, x)
    steps.append({"op": "blur", "applied": apply.tolist(), **rec})
    factor, mode = _resize_factor(g, cfg), _mode(g, modes)
    size = (max(1, int(base_hw[0] * factor)), max(1, int(base_hw[1] * factor)))
    x = resize(x, size, mode).clamp(0, 1)
    steps.append({"op": "resize", "factor": factor, "mode": mode, "size": list(size)})
    x, rec = _noise(x, g, cfg)
    steps.append(rec)
    x, rec = _jpeg(x, g, cfg.jpeg_range)
    steps.append(rec)
    return x, steps


def realesrgan(
    hr: torch.Tensor, scale: int, g: torch.Generator, cfg: RealESRGANConfig | None = None
) -> tuple[torch.Tensor, dict]:
    """Degrade ``hr`` ``(N, 3, H, W)`` to ``(N, 3, H // s, W // s)`` on the 8-bit grid;
    returns ``(lr, record)``."""
    cfg = cfg or RealESRGANConfig()
    s = int(scale)
    n, _, h, w = hr.shape
    target = (h // s, w // s)
    x = hr.clamp(0, 1)
    # Stage 1 resizes relative to the HR, stage 2 relative to the target LR (official code).
    x, steps = _stage(x, g, cfg.first, (h, w), cfg.modes)
    x, more = _stage(x, g, cfg.second, target, cfg.modes)
    steps += more

    final_mode = _mode(g, cfg.modes)
    use_sinc = rnd.bernoulli(g, cfg.final_sinc_prob, n)
    fsize = rnd.odd_size(g, *cfg.final_kernel_size, n)
    cutoff = rnd.uniform(g, *cfg.final_cutoff, n)
    k = truncate_kernel(sinc_kernel(cfg.final_kernel_size[1], cutoff), fsize)
    pulse = torch.zeros_like(k)
    pulse[:, k.shape[-1] // 2, k.shape[-1] // 2] = 1
    k = torch.where(use_sinc[:, None, None], k, pulse)
    sinc_rec = {
        "op": "sinc",
        "applied": use_sinc.tolist(),
        "size": fsize.tolist(),
        "cutoff": [
            c if u else None for c, u in zip(cutoff.tolist(), use_sinc.tolist(), strict=True)
        ],
    }
    resize_rec = {"op": "resize", "mode": final_mode, "size": list(target)}
    jpeg_first = bool(rnd.bernoulli(g, 0.5, 1))
    if jpeg_first:
        x, jrec = _jpeg(x, g, cfg.second.jpeg_range)
        x = blur(resize(x, target, final_mode), k)
        steps += [jrec, resize_rec, sinc_rec]
    else:
        x = blur(resize(x, target, final_mode), k).clamp(0, 1)
        x, jrec = _jpeg(x, g, cfg.second.jpeg_range)
        steps += [resize_rec, sinc_rec, jrec]
    lr = torch.round(x.clamp(0, 1) * 255) / 255
    return lr, {"preset": "realesrgan", "scale": s, "hr_size": [h, w], "steps": steps}
