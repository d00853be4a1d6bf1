"""Loss expressions as EDSR-PyTorch users type them: ``"1*L1+0.001*TV"``, ``"1*L1+0.006*VGG54+0.001*GAN"``.

Terms: L1, MSE, Charbonnier, TV, Cycle, VGGij (VGG19 relu{i}_{j}; e.g. VGG22, VGG54) and GAN.
Every term is logged on its own.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.losses.pixel import L1, MSE, TV, Charbonnier, Cycle

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
    name: str, perceptual: dict | None = None, adversarial: nn.Module | None = None
) -> nn.Module:
    key = name.upper()
    if key in _SIMPLE:
        return _SIMPLE[key]()
    if m := re.fullmatch(r"VGG(\d)(\d)", key):
        from zoomsr.losses.perceptual import Perceptual

        return Perceptual(layers=(f"relu{m.group(1)}_{m.group(2)}",), **(perceptual or {}))
    if key == "GAN":
        if adversarial is None:
            raise ZoomsrError("the GAN loss term needs a discriminator (set gan.* in the config)")
        return adversarial
    valid = ", ".join([*_SIMPLE, "VGGij", "GAN"])
    raise ZoomsrError(f"unknown loss term '{name}'; use {valid}")


class CompositeLoss(nn.Module):
    """Weighted sum of terms; ``forward`` returns the total and each weighted term."""

    def __init__(
        self, expr: str, perceptual: dict | None = None, adversarial: nn.Module | None = None
    ):
        super().__init__()
        parsed = parse_loss(expr)
        self.names = [name for _, name in parsed]
        self.weights = [w for w, _ in parsed]
        self.terms = nn.ModuleList(build_term(n, perceptual, adversarial) for n in self.names)

    @property
    def uses_gan(self) -> bool:
        return any(n.upper() == "GAN" for n in self.names)

    def forward(self, sr, hr, lr) -> tuple[torch.Tensor, dict[str, float]]:
        total = sr.new_zeros(())
        logged = {}
        for w, name, term in zip(self.weights, self.names, self.terms, strict=True):
            value = w * term(sr, hr, lr)
            total = total + value
            logged[name] = float(value.detach())
        return total, logged
