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
    return flow_to_offsets(torch.stack([index // ww - ys, index % ww - xs]), h, w)


def flow_to_offsets(flow: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The 18 x h x w offsets of a 2 x (h-2) x (w-2) patch flow (dy, dx), as
    :func:`index_to_offsets` builds them."""
    hh, ww = flow.shape[-2:]
    flow = F.pad(flow.to(torch.float32), (0, w - ww, 0, h - hh))
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


# --------------------------------------------------------------------------- windows for tiling
# Whole-image matching costs (H/4 · W/4)² · 2304 MAC. Tiled inference matches blocks of LR
# features against Ref windows instead. The helpers below evaluate each step on a window of the
# image and give there exactly what the whole-image call gives, so only the search range changes.

VGG_REACH = 5  # pixels of context the Student's five 3x3 convs read on each side


def ac_weights(
    size_in: int, size_out: int, lo: int, hi: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(i0, i1, lambda1)`` of output indices ``[lo, hi)`` of a bilinear align_corners resize
    from ``size_in`` to ``size_out``, with the float32 arithmetic of PyTorch's kernel."""
    idx = torch.arange(lo, hi, dtype=torch.float32, device=device)
    scale = torch.tensor(float(size_in - 1) if size_out > 1 else 0.0, device=device)
    src = scale / max(size_out - 1, 1) * idx
    i0 = src.floor().long().clamp(max=size_in - 1)
    lam = (src - i0).clamp(0, 1)
    i1 = torch.where(i0 < size_in - 1, i0 + 1, i0)
    return i0, i1, lam


def ac_source_range(size_in: int, size_out: int, lo: int, hi: int) -> tuple[int, int]:
    """The source indices ``[first, last + 1)`` that outputs ``[lo, hi)`` of that resize read."""
    i0, i1, _ = ac_weights(size_in, size_out, lo, hi)
    return int(i0.min()), int(i1.max()) + 1


def ac_resize_window(
    x: torch.Tensor,
    origin: tuple[int, int],
    size_in: tuple[int, int],
    size_out: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> torch.Tensor:
    """``rows`` x ``cols`` of ``F.interpolate(full, size_out, bilinear, align_corners=True)``.

    ``x`` is the part of the ``size_in`` map ``full`` that starts at ``origin`` and holds the
    source rows and columns (:func:`ac_source_range`) those outputs read.
    """
    i0, i1, ly = ac_weights(size_in[0], size_out[0], *rows, device=x.device)
    j0, j1, lx = ac_weights(size_in[1], size_out[1], *cols, device=x.device)
    y0, x0 = origin
    # Along W first, then H: the order of PyTorch's kernel, so results agree to the last bit.
    x = x[..., int(i0.min()) - y0 : int(i1.max()) + 1 - y0, :]
    base = int(i0.min())
    xw = x[..., j0 - x0] * (1 - lx) + x[..., j1 - x0] * lx
    ly = ly[:, None]
    return xw[..., i0 - base, :] * (1 - ly) + xw[..., i1 - base, :] * ly


def student_window(
    extractor: StudentExtractor,
    image: torch.Tensor,
    which: str,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> torch.Tensor:
    """Feature rows x cols of ``extractor``'s ``which`` ("lr" or "ref") branch on the whole
    ``image``, computed from a crop of it (the 1/4 resize maps through the whole image size)."""
    branch = extractor.lr_branch if which == "lr" else extractor.ref_branch
    big_h, big_w = image.shape[-2:]
    h, w = big_h // FEATURE_STRIDE, big_w // FEATURE_STRIDE
    a, b = ac_source_range(big_h, h, *rows)
    c, d = ac_source_range(big_w, w, *cols)
    y0, y1 = max(0, a - VGG_REACH), min(big_h, b + VGG_REACH)
    x0, x1 = max(0, c - VGG_REACH), min(big_w, d + VGG_REACH)
    crop = image[..., y0:y1, x0:x1].to(extractor.mean.device)
    y = branch((crop - extractor.mean) / extractor.std)
    return ac_resize_window(y, (y0, x0), (big_h, big_w), (h, w), rows, cols)


def match_flow(
    f_lr: torch.Tensor,
    f_ref: torch.Tensor,
    lr_origin: tuple[int, int],
    ref_origin: tuple[int, int],
    max_elements: int = 1 << 24,
) -> torch.Tensor:
    """Patch flow (2 x (h-2) x (w-2), int64 (dy, dx), whole-map feature pixels) of a window
    ``f_lr`` (C x h x w at ``lr_origin``) searched in the Ref window ``f_ref`` (at
    ``ref_origin``). With the whole maps it is the flow behind :func:`correspondence_offsets`."""
    index = match_patches(f_lr, f_ref, max_elements)
    hh, ww = index.shape
    wr = f_ref.shape[-1] - 2
    ys = torch.arange(hh, device=index.device)[:, None] + lr_origin[0]
    xs = torch.arange(ww, device=index.device)[None] + lr_origin[1]
    return torch.stack([index // wr + ref_origin[0] - ys, index % wr + ref_origin[1] - xs])


def deform_window(
    feat: torch.Tensor,
    offsets: torch.Tensor,
    origin: tuple[int, int],
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d(feat, offsets, weight, bias, padding=1)`` of a depthwise
    3x3 kernel with one offset group, on the output window at ``origin`` only.

    ``offsets`` (N x 18 x h x w) belong to output pixels ``[oy, oy+h) x [ox, ox+w)`` of the map
    ``feat`` (N x C x H x W, any device). torchvision ties the output grid to the input size,
    while a tile needs a few outputs that read a large Ref feature map; the sampling below is
    torchvision's (bilinear, zero outside the map).
    """
    n, c, big_h, big_w = feat.shape
    _, _, h, w = offsets.shape
    dev = offsets.device
    ys = torch.arange(origin[0], origin[0] + h, device=dev, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(origin[1], origin[1] + w, device=dev, dtype=torch.float32).view(1, 1, w)
    taps = []
    for k in range(9):
        i, j = divmod(k, 3)
        py = (ys + (i - 1)) + offsets[:, 2 * k]
        px = (xs + (j - 1)) + offsets[:, 2 * k + 1]
        inside = (py > -1) & (py < big_h) & (px > -1) & (px < big_w)
        taps.append((py, px, inside))
    # Read only the rows and columns the samples reach.
    lo_y = min(int(t[0][t[2]].min().floor()) if t[2].any() else big_h for t in taps)
    hi_y = max(int(t[0][t[2]].max().floor()) + 2 if t[2].any() else 0 for t in taps)
    lo_x = min(int(t[1][t[2]].min().floor()) if t[2].any() else big_w for t in taps)
    hi_x = max(int(t[1][t[2]].max().floor()) + 2 if t[2].any() else 0 for t in taps)
    sy0, sy1 = max(0, lo_y), min(big_h, hi_y)
    sx0, sx1 = max(0, lo_x), min(big_w, hi_x)
    out = torch.zeros(n, c, h, w, device=dev, dtype=feat.dtype)
    if sy1 <= sy0 or sx1 <= sx0:
        return out if bias is None else out + bias.view(1, -1, 1, 1)
    if feat.device == dev and feat.is_contiguous():
        # Gather from the whole map in place: a copy of the reached part can be as large as
        # the map itself (a 12 MP Ref's encoder features are 3 GB).
        sy0, sx0, sh, sw = 0, 0, big_h, big_w
        flat = feat.view(n, c, big_h * big_w)
    else:  # another device: move only the reached part
        part = feat[..., sy0:sy1, sx0:sx1].to(dev)
        sh, sw = part.shape[-2:]
        flat = part.reshape(n, c, sh * sw)
    for k, (py, px, inside) in enumerate(taps):
        i, j = divmod(k, 3)
        py0, px0 = py.floor(), px.floor()
        lh, lw = py - py0, px - px0
        hh, hw = 1 - lh, 1 - lw
        y_lo, x_lo = py0.long(), px0.long()
        y_hi, x_hi = y_lo + 1, x_lo + 1
        val = torch.zeros(n, c, h, w, device=dev, dtype=feat.dtype)
        for yy, xx, wt, ok in (
            (y_lo, x_lo, hh * hw, (y_lo >= 0) & (x_lo >= 0)),
            (y_lo, x_hi, hh * lw, (y_lo >= 0) & (x_hi <= big_w - 1)),
            (y_hi, x_lo, lh * hw, (y_hi <= big_h - 1) & (x_lo >= 0)),
            (y_hi, x_hi, lh * lw, (y_hi <= big_h - 1) & (x_hi <= big_w - 1)),
        ):
            ok = ok & inside
            index = ((yy - sy0).clamp(0, sh - 1) * sw + (xx - sx0).clamp(0, sw - 1)).view(n, 1, -1)
            v = torch.gather(flat, 2, index.expand(n, c, -1)).view(n, c, h, w)
            val = val + wt[:, None] * torch.where(ok[:, None], v, 0.0)
        out = out + weight[:, 0, i, j].view(1, c, 1, 1) * val
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class PatchSelector:
    """ECCV ``PatchSelect``: the Ref window whose colours are distributed most like a tile's.

    Tile and Ref are reduced by ``factor`` (bilinear, align_corners, as the official code);
    every tile-sized window of the small Ref, ``stride`` small pixels apart, is scored by the
    mean over channels and pixels of |sorted window values - sorted tile values| (per channel:
    a 1-D Wasserstein distance). :meth:`__call__` gives the best window's top-left in Ref pixels,
    clamped so that a ``size`` window fits. The sorted windows are computed once.
    """

    def __init__(
        self,
        ref: torch.Tensor,
        tile_size: tuple[int, int],
        size: tuple[int, int] | None = None,
        factor: int = 8,
        stride: int = 1,
    ):
        small = F.interpolate(ref, scale_factor=1 / factor, mode="bilinear", align_corners=True)
        rh, rw = small.shape[-2:]
        th, tw = (max(1, min(t // factor, r)) for t, r in zip(tile_size, (rh, rw), strict=True))
        self.factor, self.stride, self.small_tile = factor, stride, (th, tw)
        self.ref_size = tuple(ref.shape[-2:])
        self.size = tuple(size or tile_size)
        self.columns = (rw - tw) // stride + 1
        windows = F.unfold(small[:1].float(), (th, tw), stride=stride)[0]
        self.sorted = windows.view(small.shape[1], th * tw, -1).sort(dim=1).values

    def __call__(self, tile: torch.Tensor) -> tuple[int, int]:
        small = F.interpolate(
            tile, scale_factor=1 / self.factor, mode="bilinear", align_corners=True
        )
        th, tw = self.small_tile
        values = small[0, :, :th, :tw].reshape(small.shape[1], -1).sort(dim=1).values
        if values.shape[1] != th * tw:  # a tile smaller than planned: compare its own size
            values = F.interpolate(values[None], size=th * tw, mode="linear")[0]
        values = values.to(self.sorted.device)
        best, best_idx = None, 0
        chunk = max(1, (1 << 24) // max(1, self.sorted.shape[0] * self.sorted.shape[1]))
        for n0 in range(0, self.sorted.shape[2], chunk):
            d = (self.sorted[..., n0 : n0 + chunk] - values[..., None]).abs().mean(dim=(0, 1))
            v, i = d.min(dim=0)
            if best is None or v < best:  # the first minimum wins, as argmin
                best, best_idx = v, int(i) + n0
        py, px = divmod(best_idx, self.columns)
        top = min(py * self.stride * self.factor, self.ref_size[0] - self.size[0])
        left = min(px * self.stride * self.factor, self.ref_size[1] - self.size[1])
        return max(0, top), max(0, left)
