"""Training pairs for the SelfDZSR matcher: two views of one photo related by a known homography.

The **Ref** view is an axis-aligned crop of the photo at the photo's own resolution (the tele
camera). The **LR** view (the wide camera) has the same pixel size but sees a ``ratio`` x larger
part of the scene, through a random homography (scale jitter around the ratio, rotation,
perspective) and the degradations of a wide capture (blur, colour, noise, JPEG). The Ref's
footprint lies at a random place inside the LR view, as SelfDZSR's training windows do
(reference §1.3), and the Student matches LR against Ref at equal pixel size (§3.3).

Every item carries the homography (LR pixel -> Ref pixel, pixel centres at integers) and the
dense ground truth at the Student's feature resolution: feature ``i`` of an ``S``-pixel side
sits at image coordinate ``i * (S - 1) / (S/4 - 1)`` (the ``align_corners=True`` 1/4 resize of
:class:`~zoomsr.models.zoom.matching.StudentExtractor`). Items are pure functions of
``(seed, index)`` through an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from zoomsr.data.sisr import item_generator
from zoomsr.errors import DataError
from zoomsr.models.zoom.matching import FEATURE_STRIDE
from zoomsr.ops.color import quantize


@dataclass(frozen=True)
class PairRanges:
    """Ranges of the random view geometry and LR degradations (uniform unless stated)."""

    scale_jitter: float = 1.15  # LR/Ref scale = ratio * s, s log-uniform in [1/j, j]
    rotation_deg: float = 10.0  # max |rotation| of the LR view
    perspective: float = 0.05  # max corner displacement of the LR view, fraction of its side
    blur: tuple[float, float] = (0.0, 1.0)  # extra Gaussian blur sigma of the LR, LR pixels
    gain: tuple[float, float] = (0.85, 1.15)  # per channel
    gamma: tuple[float, float] = (0.8, 1.25)  # per channel
    noise: tuple[float, float] = (0.0, 0.04)  # Gaussian sigma on [0, 1] values
    jpeg_quality: tuple[int, int] = (50, 95)  # inclusive
    degrade: bool = True  # False: geometry only (tests, clean teacher pairs)
    min_std: float = 0.04  # redraw (up to 8 times) Ref crops flatter than this: sky teaches nothing


ANTIALIAS_SIGMA = 0.5  # LR pixels: the Gaussian pre-filter of sampling the photo at the LR pitch


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def feature_pitch(size: int) -> float:
    """Image pixels between neighbouring Student features of a ``size``-pixel side."""
    return (size - 1) / (size // FEATURE_STRIDE - 1)


def map_points(hom: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(..., 2) points through a 3x3 homography (perspective divide)."""
    flat = xy.reshape(-1, 2).astype(np.float64)
    out = np.c_[flat, np.ones(len(flat))] @ hom.T
    return (out[:, :2] / out[:, 2:]).reshape(xy.shape)


def feature_correspondence(hom: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth at feature resolution for a ``size`` x ``size`` pair related by ``hom``.

    Returns ``target`` (2, h, h): the (x, y) position, in target-view feature pixels, of every
    source feature, and ``valid`` (h, h) bool: both the source feature and its target lie at
    least one feature from the border, i.e. where a 3x3 patch of each exists (match_patches only
    compares whole patches).
    """
    h = size // FEATURE_STRIDE
    k = feature_pitch(size)
    ys, xs = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    grid = np.stack([xs, ys], -1).astype(np.float64)
    target = map_points(hom, grid * k) / k
    inside = (target >= 1) & (target <= h - 2)
    valid = inside.all(-1)
    valid[[0, -1], :] = False
    valid[:, [0, -1]] = False
    return torch.from_numpy(target).permute(2, 0, 1).float(), torch.from_numpy(valid)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of an (H, W, 3) uint8 RGB image (OpenCV wants BGR)."""
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _similarity(scale: float, angle: float, src: tuple, dst: tuple) -> np.ndarray:
    """x -> dst + scale * R(angle) (x - src)."""
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    a = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    a[:2, 2] = np.asarray(dst) - a[:2, :2] @ np.asarray(src)
    return a


class MatcherPairs(torch.utils.data.Dataset):
    """LR/Ref view pairs of uint8 RGB photos ``(3, H, W)``; see the module docstring.

    Item: ``lr``, ``ref`` (3, S, S) float in [0, 1]; ``target`` (2, h, h) and ``valid`` (h, h)
    from LR features to Ref features; ``target_inv`` / ``valid_inv`` from Ref to LR; and
    ``homography`` (3, 3) float64, LR pixel -> Ref pixel.
    """

    def __init__(
        self,
        photos: list[torch.Tensor],
        size: int = 96,
        ratio: float = 4.0,
        seed: int = 0,
        ranges: PairRanges = PairRanges(),
        length: int = 2**62,
    ):
        if size % FEATURE_STRIDE or size < 4 * FEATURE_STRIDE:
            raise DataError(f"pair size {size} must be a multiple of 4 and at least 16")
        if ratio < 1:
            raise DataError(f"zoom ratio {ratio} must be at least 1")
        self.photos = [p for p in photos if min(p.shape[-2:]) >= size]
        if not self.photos:
            raise DataError(f"every photo is smaller than the {size}-px crop; lower the size")
        self.size, self.ratio, self.seed, self.ranges = size, float(ratio), seed, ranges
        self.length = length

    def __len__(self) -> int:
        return self.length  # indexed by global sample number; the sampler decides the range

    def _geometry(self, g: torch.Generator, h: int, w: int) -> tuple[np.ndarray, tuple, float]:
        """(LR px -> photo px homography, Ref crop origin (x, y), local LR pitch in photo px)."""
        rg, size = self.ranges, self.size
        centre = ((size - 1) / 2, (size - 1) / 2)
        jitter = math.log(rg.scale_jitter)
        pitch = self.ratio * math.exp(_uniform(g, -jitter, jitter))
        angle = math.radians(_uniform(g, -rg.rotation_deg, rg.rotation_deg))
        corners = np.float32([[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]])
        moved = corners + np.float32(
            [[_uniform(g, -1, 1) * rg.perspective * size for _ in range(2)] for _ in range(4)]
        )
        persp = cv2.getPerspectiveTransform(corners, moved).astype(np.float64)
        # Where the Ref centre lands in the LR: anywhere that keeps its footprint inside.
        room = max(0.0, 0.9 * (size / 2 - size / (2 * pitch)))
        land = np.array(
            [centre[0] + _uniform(g, -room, room), centre[1] + _uniform(g, -room, room)]
        )
        ox = int(torch.randint(w - size + 1, (), generator=g))
        oy = int(torch.randint(h - size + 1, (), generator=g))
        ref_centre = (ox + centre[0], oy + centre[1])
        landed = map_points(persp, land)
        lr_to_photo = _similarity(pitch, angle, tuple(landed), ref_centre) @ persp
        return lr_to_photo, (ox, oy), pitch

    def _render_lr(
        self, photo: np.ndarray, lr_to_photo: np.ndarray, pitch: float, g: torch.Generator
    ) -> np.ndarray:
        """Blur at the LR pitch and sample the photo through the homography: (S, S, 3) float."""
        rg, size = self.ranges, self.size
        extra = _uniform(g, *rg.blur) if rg.degrade else 0.0
        sigma = pitch * math.hypot(ANTIALIAS_SIGMA, extra)
        # Blur only the photo region the LR sees (plus the kernel's reach), not the whole photo.
        corners = map_points(lr_to_photo, np.array([[0, 0], [size, 0], [size, size], [0, size]]))
        reach = 3 * sigma + 2
        ph, pw = photo.shape[:2]
        x0, y0 = (max(0, math.floor(v - reach)) for v in corners.min(0))
        x1 = min(pw, math.ceil(corners[:, 0].max() + reach) + 1)
        y1 = min(ph, math.ceil(corners[:, 1].max() + reach) + 1)
        x0, y0 = min(x0, pw - 1), min(y0, ph - 1)
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        region = photo[y0:y1, x0:x1].astype(np.float32) / 255
        region = cv2.GaussianBlur(region, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        shift = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
        return cv2.warpPerspective(
            region,
            shift @ lr_to_photo,
            (size, size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,  # outside the photo: no Ref there, never valid
        )

    def _degrade(self, lr: np.ndarray, g: torch.Generator) -> torch.Tensor:
        """Colour (per-channel gain and gamma), Gaussian noise, 8-bit quantisation, JPEG."""
        rg = self.ranges
        x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).float()
        if not rg.degrade:
            return x.clamp(0, 1)
        gains = torch.tensor([_uniform(g, *rg.gain) for _ in range(3)]).view(3, 1, 1)
        gammas = torch.tensor([_uniform(g, *rg.gamma) for _ in range(3)]).view(3, 1, 1)
        x = (x.clamp(0, 1) * gains).clamp(0, 1) ** gammas
        x = quantize(x + torch.randn(x.shape, generator=g) * _uniform(g, *rg.noise))
        lo, hi = rg.jpeg_quality
        quality = lo + int(torch.randint(hi - lo + 1, (), generator=g))
        u8 = torch.round(x * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        return torch.from_numpy(_jpeg(u8, quality)).permute(2, 0, 1).float() / 255

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = item_generator(self.seed, index)
        photo = self.photos[int(torch.randint(len(self.photos), (), generator=g))]
        _, h, w = photo.shape
        size = self.size
        for _ in range(8):
            lr_to_photo, (ox, oy), pitch = self._geometry(g, h, w)
            crop = photo[:, oy : oy + size, ox : ox + size]
            if float(crop.float().std(dim=(1, 2)).mean()) >= 255 * self.ranges.min_std:
                break
        hwc = photo.permute(1, 2, 0).numpy()
        lr = self._degrade(self._render_lr(hwc, lr_to_photo, pitch, g), g)
        ref = crop.float().div(255)
        hom = np.array([[1.0, 0, -ox], [0, 1.0, -oy], [0, 0, 1.0]]) @ lr_to_photo
        hom /= hom[2, 2]
        target, valid = feature_correspondence(hom, size)
        target_inv, valid_inv = feature_correspondence(np.linalg.inv(hom), size)
        return {
            "lr": lr.contiguous(),
            "ref": ref.contiguous(),
            "target": target,
            "valid": valid,
            "target_inv": target_inv,
            "valid_inv": valid_inv,
            "homography": torch.from_numpy(hom),
        }
