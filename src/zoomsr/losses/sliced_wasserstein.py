"""Sliced Wasserstein feature losses of SelfDZSR: global SW (ECCV 2022) and LOSW (TPAMI 2024).

SW compares the *distributions* of feature vectors rather than their positions, so a residual
misalignment between output and GT is not punished as blur. For C-channel features, C/2 random
unit directions are drawn, both feature sets are projected on them, each projection is sorted
over space and the sorted values are compared with L1 (reference §4.3). LOSW does the same inside
every k x k window (stride 2) of the feature map, so the statistic stays local (reference §4.4).
The directions are redrawn at every call from an explicit ``torch.Generator`` (the official code
uses numpy's global RNG).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError


def random_projections(
    n: int, channels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` x ``channels`` Gaussian directions, each row of unit L2 norm (drawn on the CPU)."""
    return F.normalize(torch.randn(n, channels, generator=generator), dim=1)


def _project(
    output: torch.Tensor,
    target: torch.Tensor,
    projections: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both N x C x H x W maps projected on the same K directions: two N x K x H x W maps."""
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    n, c, h, w = output.shape
    if projections is None:
        projections = random_projections(max(1, c // 2), c, generator)
    projections = projections.to(device=output.device, dtype=output.dtype)
    u = torch.matmul(projections, output.reshape(n, c, -1)).view(n, -1, h, w)
    v = torch.matmul(projections, target.reshape(n, c, -1)).view(n, -1, h, w)
    return u, v


def sliced_wasserstein(
    output: torch.Tensor,
    target: torch.Tensor,
    projections: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Global SW distance of two N x C x H x W feature maps: mean |sort(P·u) - sort(P·v)|.

    ``projections`` (K x C, rows of unit norm) default to C/2 fresh random directions, shared
    by output and target and by every sample of the batch.
    """
    u, v = _project(output, target, projections, generator)
    return F.l1_loss(u.flatten(2).sort(dim=2).values, v.flatten(2).sort(dim=2).values)


def local_sliced_wasserstein(
    output: torch.Tensor,
    target: torch.Tensor,
    window: int,
    stride: int = 2,
    projections: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """LOSW distance: SW inside every ``window`` x ``window`` window (``stride``, no padding).

    The same projections serve every window, sample, output and target; the mean runs over
    N x windows x K x window² like the official ``SWDLocal``.
    """
    h, w = output.shape[-2:]
    if not 1 <= window <= min(h, w):
        raise ValueError(f"window {window} does not fit a {h}x{w} feature map")
    u, v = _project(output, target, projections, generator)

    def sorted_windows(p: torch.Tensor) -> torch.Tensor:
        # Projection is per pixel, so projecting before cutting windows is the same and
        # cheaper (K = C/2 maps); one batched sort over each window's pixels.
        p = p.unfold(2, window, stride).unfold(3, window, stride)  # N x K x Lh x Lw x k x k
        return p.flatten(-2).sort(dim=-1).values

    return F.l1_loss(sorted_windows(u), sorted_windows(v))


def losw_window(patch_height: int, layer: str, divisor: int = 6) -> int:
    """LOSW window side at VGG tap ``reluI_J``: H // 2**(I-1) // divisor (reference §4.4).

    H is the height of the GT patch given to the loss: 8, 4, 2 for relu3_2/4_2/5_2 at 192 px.
    """
    return patch_height // _tap_stride(layer) // divisor


def _tap_stride(layer: str) -> int:
    """How many input pixels one pixel of VGG tap ``reluI_J`` spans per axis: 2**(I-1)."""
    m = re.fullmatch(r"relu(\d)_\d", layer)
    if m is None:
        raise ValueError(f"LOSW needs VGG taps named reluI_J, not '{layer}'")
    return 2 ** (int(m.group(1)) - 1)


class SlicedWassersteinLoss(nn.Module):
    """SelfDZSR's SW loss on VGG19 features: ``scale`` x Σ_l w_l · SW(φ_l(sr), φ_l(hr)).

    Defaults are the paper's: relu3_2, relu4_2, relu5_2 with weights 1, 1, 2 and scale 0.08.
    ``seed`` fixes the stream of projections (redrawn at every call). An optional ``mask``
    (N x 1 x H x W, soft) multiplies both images before the backbone (reference §4.5).
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu3_2", "relu4_2", "relu5_2"),
        layer_weights: Sequence[float] = (1.0, 1.0, 2.0),
        scale: float = 0.08,
        backbone: str = "vgg19",
        seed: int = 0,
        extractor: nn.Module | None = None,
    ):
        super().__init__()
        if extractor is None:
            from zoomsr.backbones import FeatureExtractor

            extractor = FeatureExtractor(backbone, tuple(layers))
        self.extractor = extractor
        self.layers = tuple(layers)
        self.layer_weights = tuple(layer_weights)
        self.scale = scale
        self.generator = torch.Generator().manual_seed(seed)

    def distance(self, fs: torch.Tensor, ft: torch.Tensor, layer: str, height: int):
        return sliced_wasserstein(fs, ft, generator=self.generator)

    def forward(
        self,
        sr: torch.Tensor,
        hr: torch.Tensor,
        lr: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ):
        if mask is not None:
            sr, hr = sr * mask, hr * mask
        fs = self.extractor(sr)
        with torch.no_grad():
            ft = self.extractor(hr)
        total = sum(
            w * self.distance(fs[k], ft[k], k, hr.shape[-2])
            for k, w in zip(self.layers, self.layer_weights, strict=True)
        )
        return self.scale * total


class LocalSlicedWassersteinLoss(SlicedWassersteinLoss):
    """SelfDZSR++'s LOSW: the SW loss above taken in overlapping local windows (reference §4.4).

    The window side at each tap follows the GT patch height (:func:`losw_window`, ``divisor``
    6: 8, 4, 2 at 192 px) unless ``windows`` fixes one side per layer; windows move by
    ``stride`` 2 without padding.
    """

    def __init__(
        self,
        *args,
        divisor: int = 6,
        stride: int = 2,
        windows: Sequence[int] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if windows is not None and len(windows) != len(self.layers):
            raise ZoomsrError(f"LOSW needs one window size per layer ({', '.join(self.layers)})")
        self.divisor, self.stride = divisor, stride
        self.windows = None if windows is None else dict(zip(self.layers, windows, strict=True))

    def distance(self, fs: torch.Tensor, ft: torch.Tensor, layer: str, height: int):
        if self.windows is not None:
            k = self.windows[layer]
        else:
            k = losw_window(height, layer, self.divisor)
            if k < 1:
                low = _tap_stride(layer) * self.divisor
                raise ZoomsrError(
                    f"LOSW at {layer} needs GT patches of at least {low} px high, got {height}; "
                    "use larger patches or the SW term"
                )
        return local_sliced_wasserstein(fs, ft, k, self.stride, generator=self.generator)
