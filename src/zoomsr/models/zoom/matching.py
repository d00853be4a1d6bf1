"""Ref matching for SelfDZSR: Student features, patch correlation, deformable warp, paste.

Reference §3.3-3.4. The frozen two-branch VGG16 ("Student") maps LR and Ref to 256-channel
features at 1/4 resolution; every 3x3 LR feature patch is matched to the most similar 3x3 Ref
patch (cosine similarity, argmax); the resulting flow becomes the 18-channel offsets of a
depthwise deformable conv that warps the Ref features onto the LR grid. Where the Ref's own
footprint lies in the LR, its features are pasted directly (:class:`RefPatchHead`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

from zoomsr.models.layers import conv
from zoomsr.models.zoom.restoration import RGBMeanShift

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# VGG16 layers up to conv3_1 with pool1/pool2 removed: (name, torchvision features index).
_VGG16_CONVS = (("conv1_1", 0), ("conv1_2", 2), ("conv2_1", 5), ("conv2_2", 7), ("conv3_1", 10))
_VGG16_WIDTHS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256))

FEATURE_STRIDE = 4  # Student features are at 1/4 of the image resolution.


def _vgg16_branch() -> nn.Sequential:
    layers: dict[str, nn.Module] = {}
    for (name, _), (cin, cout) in zip(_VGG16_CONVS, _VGG16_WIDTHS, strict=True):
        layers[name] = nn.Conv2d(cin, cout, 3, padding=1)
        if name != "conv3_1":  # features are taken before relu3_1
            layers["relu" + name[4:]] = nn.ReLU(inplace=True)
    return nn.Sequential(OrderedDict(layers))


class StudentExtractor(nn.Module):
    """Frozen two-branch VGG16-to-conv3_1 extractor: ``forward(lr, ref) -> (f_lr, f_ref)``.

    The branches have independent weights (``lr_branch`` for the LR side, ``ref_branch`` for
    the Ref). Outputs are 256 x floor(H/4) x floor(W/4), at full resolution before a bilinear
    1/4 reduction (no pooling layers).
    """

    def __init__(self) -> None:
        super().__init__()
        self.lr_branch = _vgg16_branch()
        self.ref_branch = _vgg16_branch()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def load_imagenet(self, weights: str | None = None) -> StudentExtractor:
        """Initialise both branches from ImageNet VGG16 (the starting point of distillation)."""
        from zoomsr.backbones import load_features

        features = load_features("vgg16", weights)
        for branch in (self.lr_branch, self.ref_branch):
            for name, index in _VGG16_CONVS:
                getattr(branch, name).load_state_dict(features[index].state_dict())
        return self

    def _run(self, branch: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        y = branch((x - self.mean) / self.std)
        return F.interpolate(
            y, scale_factor=1 / FEATURE_STRIDE, mode="bilinear", align_corners=True
        )

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(self.lr_branch, lr), self._run(self.ref_branch, ref)


def match_patches(
    f_in: torch.Tensor, f_ref: torch.Tensor, max_elements: int = 1 << 24
) -> torch.Tensor:
    """Index of the best Ref 3x3 patch for every LR 3x3 patch of one image (C x h x w each).

    Pixel vectors are L2-normalised; each Ref patch is divided by its own norm (+1e-5) and the
    LR patches are not, so scores are 3 x cosine similarity, as in the official code. Returns
    (h-2) x (w-2) indices n = a·(w-2) + b of the patch with top-left (a, b). Work is chunked over
    LR rows and Ref patches so no temporary exceeds about ``max_elements`` floats; a later Ref
    chunk wins only with a strictly greater score. Cost stays quadratic in the image area.
    """
    _, h, w = f_in.shape
    f_in = F.normalize(f_in, dim=0)
    f_ref = F.normalize(f_ref, dim=0)
    patches = F.unfold(f_ref[None], 3)[0].t()  # n x 9C, channel-major like a conv weight
    patches = patches / (patches.norm(dim=1, keepdim=True) + 1e-5)
    n, k = patches.shape
    out_w = w - 2
    rows = max(1, min(h - 2, max_elements // (k * out_w)))
    chunk = max(1, max_elements // max(k, rows * out_w))
    best = []
    for y0 in range(0, h - 2, rows):
        y1 = min(h - 2, y0 + rows)
        cols = F.unfold(f_in[None, :, y0 : y1 + 2], 3)[0]  # 9C x L
        best_val = best_idx = None
        for n0 in range(0, n, chunk):
            val, idx = (patches[n0 : n0 + chunk] @ cols).max(dim=0)
            if best_val is None:
                best_val, best_idx = val, idx
            else:
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx + n0, best_idx)
        best.append(best_idx.view(y1 - y0, out_w))
    return torch.cat(best)


def index_to_offsets(index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The 18 x h x w deformable offsets (feature pixels) of a match index map.

    Flow = matched top-left minus own top-left, zero-padded by 2 at the bottom/right to h x w.
    Tap k = 3i + j of pixel (y, x) takes the flow of (y - i, x - j) (0 outside), so with a
    locally constant flow the 3x3 taps cover the matched Ref patch (C²-Matching construction).
    """
    hh, ww = index.shape
    ys, xs = torch.meshgrid(
        torch.arange(hh, device=index.device), torch.arange(ww, device=index.device), indexing="ij"
    )
    flow = torch.stack([index // ww - ys, index % ww - xs]).to(torch.float32)  # (dy, dx)
    flow = F.pad(flow, (0, w - ww, 0, h - hh))
    taps = []
    for i in range(3):
        for j in range(3):
            taps.append(F.pad(flow, (j, 0, i, 0))[:, :h, :w])
    return torch.cat(taps)


def correspondence_offsets(
    f_in: torch.Tensor, f_ref: torch.Tensor, max_elements: int = 1 << 24
) -> torch.Tensor:
    """N x 18 x h x w offsets in feature pixels from LR and Ref features of the same size."""
    if f_in.shape != f_ref.shape:
        raise ValueError(
            f"LR and Ref features must have the same shape: {f_in.shape} vs {f_ref.shape}"
        )
    _, _, h, w = f_in.shape
    if h < 3 or w < 3:
        raise ValueError(f"features of {h}x{w} are too small for 3x3 matching (images below 12 px)")
    return torch.stack(
        [
            index_to_offsets(match_patches(a, b, max_elements), h, w)
            for a, b in zip(f_in, f_ref, strict=True)
        ]
    )


def offsets_to_image(offsets: torch.Tensor, stride: int = FEATURE_STRIDE) -> torch.Tensor:
    """Feature-pixel offsets -> image-pixel offsets: bilinear (align_corners) x stride, times stride."""
    h, w = offsets.shape[-2:]
    up = F.interpolate(offsets, size=(h * stride, w * stride), mode="bilinear", align_corners=True)
    return up * stride


class RefEncoder(nn.Sequential):
    """Ref image -> 64-channel features at the Ref resolution (5 convs, ReLU between)."""

    def __init__(self, n_feats: int = 64, depth: int = 5):
        layers: list[nn.Module] = [RGBMeanShift(-1), conv(3, n_feats, 3)]
        for _ in range(depth - 1):
            layers += [nn.ReLU(inplace=True), conv(n_feats, n_feats, 3)]
        super().__init__(*layers)


class RefPatchHead(nn.Sequential):
    """Ref image -> features on the LR grid of its footprint (space-to-depth by ``scale``, conv).

    Uses ``nn.PixelUnshuffle`` (channel c·s² + dy·s + dx); official checkpoints order the
    channels (dy·s + dx)·3 + c, which the converter permutes.
    """

    def __init__(self, scale: int = 4, n_feats: int = 64):
        super().__init__(RGBMeanShift(-1), nn.PixelUnshuffle(scale), conv(3 * scale**2, n_feats, 3))


def ref_warp(n_feats: int = 64) -> DeformConv2d:
    """The depthwise 3x3 deformable conv (with bias) that warps Ref features by the offsets."""
    return DeformConv2d(n_feats, n_feats, 3, padding=1, groups=n_feats, bias=True)


Box = Sequence[int]


def paste(features: torch.Tensor, patch: torch.Tensor, boxes: Sequence[Box | None]) -> torch.Tensor:
    """A copy of ``features`` with ``patch[i]`` written at ``boxes[i]`` = (top, bottom, left, right).

    A ``None`` box leaves that sample unchanged (training pastes with a probability).
    """
    out = features.clone()
    for i, box in enumerate(boxes):
        if box is not None:
            top, bottom, left, right = box
            out[i, :, top:bottom, left:right] = patch[i]
    return out
