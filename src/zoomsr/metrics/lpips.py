"""LPIPS v0.1 (Zhang et al., CVPR 2018), as the ``lpips`` package computes it by default.

Written by hand on zoomsr.backbones because the ``lpips`` package asks torchvision to download
its backbones, which cannot work offline. The steps follow shared/data/BACKBONES.md §5; the
result matches lpips 0.1.4 to about 1e-6 on the reference pairs.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.backbones import FeatureExtractor, as_rgb, load_lpips_heads
from zoomsr.errors import ZoomsrError

# net -> (backbone, ReLU taps): alex relu1..relu5 = features 1, 4, 7, 9, 11;
# vgg relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 = features 3, 8, 15, 22, 29.
NETS = {
    "alex": ("alexnet", ("relu1", "relu2", "relu3", "relu4", "relu5")),
    "vgg": ("vgg16", ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")),
}
_ALIASES = {"alexnet": "alex", "vgg16": "vgg"}

# The lpips "ScalingLayer": its constants act on images in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


def _unit_normalize(f: torch.Tensor) -> torch.Tensor:
    # Exactly lpips.normalize_tensor: the eps is added to the norm, not inside the sqrt.
    return f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + _EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with the ``alex`` or ``vgg`` backbone (lower is more similar).

    ``forward(x, y)`` takes two N×3×H×W (or N×1×H×W gray) RGB batches in [0, 1] — NOT
    [-1, 1]: the module scales to [-1, 1] itself — and returns the N distances. The module is
    frozen (eval mode, no weight gradients) but differentiable in its inputs.
    """

    def __init__(
        self,
        net: str = "alex",
        *,
        weights: str | os.PathLike | None = None,
        heads: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        net = _ALIASES.get(net, net)
        if net not in NETS:
            raise ZoomsrError(f"unknown LPIPS network '{net}'; choose one of: {', '.join(NETS)}")
        self.net = net
        backbone, taps = NETS[net]
        # Raw features: LPIPS replaces the ImageNet normalisation with its scaling layer.
        self.features = FeatureExtractor(
            backbone, taps, weights=weights, normalize=False, cache_dir=cache_dir
        )
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        for i, w in enumerate(load_lpips_heads(net, heads, cache_dir)):
            self.register_buffer(f"lin{i}", w)  # (1, C, 1, 1): a 1×1 conv without bias
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # a metric: never in training mode

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = as_rgb(x).to(self.shift.dtype)
        x = (x * 2 - 1 - self.shift) / self.scale
        return [_unit_normalize(f) for f in self.features(x).values()]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
            raise ValueError(f"LPIPS needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
        # Two separate passes (not one concatenated batch) keep LPIPS(x, x) exactly 0 and the
        # result exactly symmetric.
        total = None
        for i, (fx, fy) in enumerate(zip(self._features(x), self._features(y), strict=True)):
            d = F.conv2d((fx - fy) ** 2, getattr(self, f"lin{i}")).mean(dim=(1, 2, 3))
            total = d if total is None else total + d
        return total


_CACHE: dict[tuple[str, str], LPIPS] = {}


def lpips(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 distances (N,) of two RGB batches in [0, 1]; the module is built once per
    (net, device) and kept."""
    key = (_ALIASES.get(net, net), str(x.device))
    module = _CACHE.get(key)
    if module is None:
        module = _CACHE[key] = LPIPS(key[0]).to(x.device)
    return module(x, y)
