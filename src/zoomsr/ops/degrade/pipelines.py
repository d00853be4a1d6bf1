"""Named degradation presets: ``bsrgan``, ``realesrgan`` and ``div2krk``.

A preset is a function ``(hr, scale, generator, cfg) -> (lr, record)`` with a config dataclass
of its parameter ranges; :class:`Degradation` binds the two. ``record`` holds every drawn
parameter (per-sample values as lists of length N), JSON-serialisable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from zoomsr.errors import ZoomsrError
from zoomsr.ops.degrade import _random as rnd
from zoomsr.ops.degrade.bsrgan import BSRGANConfig, bsrgan
from zoomsr.ops.degrade.kernels import (
    blur_downsample,
    gaussian_covariance,
    gaussian_kernel_from_covariance,
)
from zoomsr.ops.degrade.realesrgan import RealESRGANConfig, realesrgan


@dataclass
class DIV2KRKConfig:
    """KernelGAN's DIV2KRK test-set procedure: a random anisotropic Gaussian kernel with
    per-tap multiplicative noise, then ``(HR ⋆ k)[::s, ::s]`` on MATLAB's sampling grid."""

    variance: tuple[float, float] | None = None  # covariance eigenvalues; None: (0.175 s, 2.5 s)
    kernel_noise: float = 0.4  # taps x U(1 - noise, 1 + noise)
    kernel_size: int | None = None  # None: 4 s + 3


def div2krk(
    hr: torch.Tensor, scale: int, g: torch.Generator, cfg: DIV2KRKConfig | None = None
) -> tuple[torch.Tensor, dict]:
    """Blur with a random DIV2KRK-style kernel per sample and subsample; 8-bit output."""
    cfg = cfg or DIV2KRKConfig()
    s = int(scale)
    n, _, h, w = hr.shape
    if h % s or w % s:
        raise ZoomsrError(f"div2krk: image size {w}x{h} is not a multiple of the scale {s}")
    lo, hi = cfg.variance if cfg.variance is not None else (0.175 * s, 2.5 * s)
    size = cfg.kernel_size or 4 * s + 3
    size += 1 - size % 2
    lam1, lam2 = rnd.uniform(g, lo, hi, n), rnd.uniform(g, lo, hi, n)
    theta = rnd.uniform(g, 0.0, math.pi, n)
    noise = 1 + cfg.kernel_noise * (
        2 * torch.rand((n, size, size), generator=g, dtype=torch.float64) - 1
    )
    cov = gaussian_covariance(lam1.sqrt(), lam2.sqrt(), theta)
    k = gaussian_kernel_from_covariance(size, cov, offset=(s - 1) / 2).double() * noise
    k = (k / k.sum(dim=(-2, -1), keepdim=True)).float()
    lr = torch.round(blur_downsample(hr.clamp(0, 1), k, s).clamp(0, 1) * 255) / 255
    record = {
        "preset": "div2krk",
        "scale": s,
        "hr_size": [h, w],
        "steps": [
            {
                "op": "blur_subsample",
                "variances": [[a, b] for a, b in zip(lam1.tolist(), lam2.tolist(), strict=True)],
                "theta": theta.tolist(),
                "kernel_noise": cfg.kernel_noise,
                "size": size,
                "kernel": k.tolist(),
            }
        ],
    }
    return lr, record


@dataclass(frozen=True)
class Preset:
    fn: Callable
    config: type
    summary: str


PRESETS: dict[str, Preset] = {
    "bsrgan": Preset(bsrgan, BSRGANConfig, "BSRGAN shuffled blur/down-sampling/noise/JPEG/camera"),
    "realesrgan": Preset(realesrgan, RealESRGANConfig, "Real-ESRGAN second-order degradation"),
    "div2krk": Preset(div2krk, DIV2KRKConfig, "random anisotropic Gaussian kernel + subsampling"),
}


class Degradation:
    """A preset with its parameters: ``Degradation("bsrgan")(hr, scale, generator)``."""

    def __init__(self, name: str, config=None):
        if name not in PRESETS:
            raise ZoomsrError(
                f"unknown degradation preset '{name}'; use one of {', '.join(sorted(PRESETS))}"
            )
        self.name = name
        self.config = config if config is not None else PRESETS[name].config()

    def __call__(
        self, hr: torch.Tensor, scale: int, generator: torch.Generator | int
    ) -> tuple[torch.Tensor, dict]:
        g = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
        return PRESETS[self.name].fn(hr, scale, g, self.config)

    def with_config(self, **changes) -> Degradation:
        return Degradation(self.name, replace(self.config, **changes))

    def __repr__(self) -> str:
        return f"Degradation({self.name!r}, {self.config!r})"


def degrade(
    hr: torch.Tensor, preset: str, scale: int, seed: int | torch.Generator = 0
) -> tuple[torch.Tensor, dict]:
    """``(lr, record)`` of the preset ``preset`` on ``hr`` ``(N, 3, H, W)``, from ``seed``."""
    return Degradation(preset)(hr, scale, seed)
