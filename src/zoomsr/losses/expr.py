"""Loss expressions as EDSR-PyTorch users type them: ``"1*L1+0.001*TV"``, ``"1*L1+0.006*VGG54+0.001*GAN"``.

Terms: L1, MSE, Charbonnier, TV, Cycle, VGGij (VGG19 relu{i}_{j}; e.g. VGG22, VGG54), GAN and
SW (SelfDZSR's sliced Wasserstein on VGG19 relu3_2/4_2/5_2, weights 1/1/2: ``1*L1+0.08*SW``) and
LOSW (SelfDZSR++'s local overlapped SW, same taps and weights: ``1*L1+0.08*LOSW``).
Every term is logged on its own.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.losses.pixel import L1, MSE, TV, Charbonnier, Cycle

# Offline, the SW term runs on the Oxford/Caffe VGG19 (torchvision's VGG19 is not installable
# here). Its activations are far larger than torchvision's, so each tap is divided by the ratio
# of mean |activation| measured against torchvision VGG16 (same ImageNet recipe as torchvision
# VGG19) on 192-px crops of six shared photos; this keeps the paper's 0.08 weight meaningful.
CAFFE_SW_SCALES = {"relu3_2": 130.0, "relu4_2": 430.0, "relu5_2": 46.0}


class ScaledFeatures(nn.Module):
    """A feature extractor whose taps are divided by fixed per-layer scales."""

    def __init__(self, extractor: nn.Module, scales: dict[str, float]):
        super().__init__()
        self.extractor = extractor
        self.scales = dict(scales)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v / self.scales.get(k, 1.0) for k, v in self.extractor(x).items()}


def sliced_wasserstein_term(
    backbone: str = "vgg19_caffe",
    feature_scales: list[float] | None = None,
    seed: int = 0,
    local: bool = False,
) -> nn.Module:
    """The SW (or, with ``local``, LOSW) term at unit weight (the expression's weight is λ = 0.08)."""
    from zoomsr.backbones import FeatureExtractor
    from zoomsr.losses.sliced_wasserstein import LocalSlicedWassersteinLoss, SlicedWassersteinLoss

    layers = ("relu3_2", "relu4_2", "relu5_2")
    if feature_scales is None:
        feature_scales = [CAFFE_SW_SCALES[k] if backbone == "vgg19_caffe" else 1.0 for k in layers]
    if len(feature_scales) != len(layers):
        raise ZoomsrError(f"SW needs {len(layers)} feature scales ({', '.join(layers)})")
    extractor = ScaledFeatures(
        FeatureExtractor(backbone, layers), dict(zip(layers, feature_scales, strict=True))
    )
    loss = LocalSlicedWassersteinLoss if local else SlicedWassersteinLoss
    return loss(layers, scale=1.0, seed=seed, extractor=extractor)


_SIMPLE = {"L1": L1, "MSE": MSE, "CHARBONNIER": Charbonnier, "TV": TV, "CYCLE": Cycle}
_TERM = re.compile(r"^\s*(?:([0-9.eE+-]+)\s*\*\s*)?([A-Za-z][A-Za-z0-9_]*)\s*$")


def parse_loss(expr: str) -> list[tuple[float, str]]:
    """``"1*L1+0.001*TV"`` -> [(1.0, "L1"), (0.001, "TV")]."""
    terms = []
    # Split on '+' that are not part of an exponent (1e+3).
    for part in re.split(r"(?<![0-9][eE])\+", expr):
        m = _TERM.match(part)
        if not m:
            raise ZoomsrError(
                f"cannot parse loss term '{part.strip()}' in '{expr}' (write e.g. 1*L1+0.001*TV)"
            )
        weight = float(m.group(1)) if m.group(1) else 1.0
        terms.append((weight, m.group(2)))
    if not terms:
        raise ZoomsrError("empty loss expression")
    return terms


def build_term(
    name: str,
    perceptual: dict | None = None,
    adversarial: nn.Module | None = None,
    sliced_wasserstein: dict | None = None,
) -> nn.Module:
    key = name.upper()
    if key in ("SW", "LOSW"):
        return sliced_wasserstein_term(**(sliced_wasserstein or {}), local=key == "LOSW")
    if key in _SIMPLE:
        return _SIMPLE[key]()
    if m := re.fullmatch(r"VGG(\d)(\d)", key):
        from zoomsr.losses.perceptual import Perceptual

        return Perceptual(layers=(f"relu{m.group(1)}_{m.group(2)}",), **(perceptual or {}))
    if key == "GAN":
        if adversarial is None:
            raise ZoomsrError("the GAN loss term needs a discriminator (set gan.* in the config)")
        return adversarial
    valid = ", ".join([*_SIMPLE, "VGGij", "GAN", "SW", "LOSW"])
    raise ZoomsrError(f"unknown loss term '{name}'; use {valid}")


class CompositeLoss(nn.Module):
    """Weighted sum of terms; ``forward`` returns the total and each weighted term."""

    def __init__(
        self,
        expr: str,
        perceptual: dict | None = None,
        adversarial: nn.Module | None = None,
        sliced_wasserstein: dict | None = None,
    ):
        super().__init__()
        parsed = parse_loss(expr)
        self.names = [name for _, name in parsed]
        self.weights = [w for w, _ in parsed]
        self.terms = nn.ModuleList(
            build_term(n, perceptual, adversarial, sliced_wasserstein) for n in self.names
        )

    def generators(self) -> list[torch.Generator]:
        """The random streams of the terms (SW projections), for exact resumption."""
        return [
            m.generator
            for m in self.modules()
            if isinstance(getattr(m, "generator", None), torch.Generator)
        ]

    @property
    def uses_gan(self) -> bool:
        return any(n.upper() == "GAN" for n in self.names)

    def forward(self, sr, hr, lr, mask=None) -> tuple[torch.Tensor, dict[str, float]]:
        if mask is not None:  # reference §4.5: both images masked before every term, no renorm
            sr, hr = sr * mask, hr * mask
        total = sr.new_zeros(())
        logged = {}
        for w, name, term in zip(self.weights, self.names, self.terms, strict=True):
            value = w * term(sr, hr, lr)
            total = total + value
            logged[name] = float(value.detach())
        return total, logged
