"""The noise image SelfDZSR adds to its auxiliary LR (reference §2.5, official ``degrade_kernel.py``).

The GT patch is degraded by three operations in a random order: a bilinear downsample by the
ratio, Gaussian noise (σ in [5, 30] of 255) and JPEG (quality in [60, 95]). Because noise and
JPEG may come before the downsample, the result is a realistic LR-sized noisy image; the
training step adds ``noise - bicubic↓(GT)`` to the generator's clean auxiliary LR.

Draws come from an explicit ``torch.Generator`` derived from ``(seed, index)`` (the official
code uses Python ``random`` and numpy in loader workers), so items stay pure functions of the
index and ``--resume`` replays them exactly.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from zoomsr.data.sisr import item_generator
from zoomsr.data.zoom import ZoomTrainSet
from zoomsr.ops.degrade.jpeg import jpeg_uint8

NOISE_SALT = 0x5E1FD2  # separates the noise stream from the patch stream of the same index


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]`` (inclusive, as Python's ``random.randint``)."""
    return lo + int(torch.randint(hi - lo + 1, (), generator=g))


def _down(img: np.ndarray, ratio: int, g: torch.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    # OpenCV's bilinear (not antialiased) with int(w / sf): what the official code does.
    return cv2.resize(img, (int(w / ratio), int(h / ratio)), interpolation=cv2.INTER_LINEAR)


def _gaussian(img: np.ndarray, sigma_range: tuple[int, int], g: torch.Generator) -> np.ndarray:
    sigma = _randint(g, *sigma_range)
    noise = torch.randn(img.shape, generator=g, dtype=torch.float64).numpy() * sigma
    # Clip then truncate to uint8, as numpy's astype does in the official code.
    return np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, quality_range: tuple[int, int], g: torch.Generator) -> np.ndarray:
    # The official code passes RGB to OpenCV (quirk #7); jpeg_uint8 keeps the true colours.
    return jpeg_uint8(img, _randint(g, *quality_range))


def degrade_noise(
    gt: torch.Tensor,
    ratio: int,
    g: torch.Generator,
    sigma: tuple[int, int] = (5, 30),
    quality: tuple[int, int] = (60, 95),
) -> torch.Tensor:
    """The official noise image of a GT patch: uint8 ``(3, rh, rw)`` -> uint8 ``(3, h, w)``."""
    img = gt.permute(1, 2, 0).numpy()
    ops = [
        lambda x: _down(x, ratio, g),
        lambda x: _gaussian(x, sigma, g),
        lambda x: _jpeg(x, quality, g),
    ]
    for i in torch.randperm(3, generator=g).tolist():  # uniform over the 6 orders
        img = ops[i](img)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


class WithAuxNoise(torch.utils.data.Dataset):
    """Items of a :class:`ZoomTrainSet` (dual or triple) plus ``noise`` (3, p, p): the
    :func:`degrade_noise` of the item's (augmented) GT patch, from its own ``(seed, index)``
    stream so the patch draws stay as they are."""

    def __init__(
        self,
        base: ZoomTrainSet,
        sigma: tuple[int, int] = (5, 30),
        quality: tuple[int, int] = (60, 95),
    ):
        self.base, self.sigma, self.quality = base, tuple(sigma), tuple(quality)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        g = item_generator(self.base.seed, index, NOISE_SALT)
        gt = torch.round(item["gt"] * 255).to(torch.uint8)  # exact: the patch came from uint8
        noise = degrade_noise(gt, self.base.ratio, g, self.sigma, self.quality)
        item["noise"] = noise.float().div(255)
        return item
