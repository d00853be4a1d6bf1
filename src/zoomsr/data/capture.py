"""Whole captures for zoom inference: the wide image as LR, each reference on its footprint.

``prepare.py`` makes training samples (LR = the wide crop under the tele's view). Here the LR is
the whole wide image, and each reference camera's image (tele, or the middle camera of a triple)
becomes a Ref the way the zoom models take it:
1. its footprint in the wide image is found by SIFT + RANSAC (prepare's matching), its size set
   by the zoom ratio (measured, from the EXIF, or given);
2. it is warped onto that axis-aligned box at ``zoom`` x the wide's sampling (homography, then
   dense flow: prepare's alignment), so a ~2x tele becomes the 4x Ref of a x4 model by resampling;
3. the box is trimmed to whole LR pixels that have a camera source everywhere, so ``box size x
   zoom == Ref size`` exactly, and the Ref is colour-matched to the wide (never the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from zoomsr.data.prepare import (
    MIN_RATIO,
    _align,
    _camera_to_wide,
    _colour_matched,
    _psnr,
    _rounded,
    _trim,
    _valid_lr,
    exif_focal_ratio,
)
from zoomsr.errors import DataError, ZoomsrError
from zoomsr.io import Image, read_image
from zoomsr.ops.geometry import apply_homography

Box = tuple[int, int, int, int]  # (top, bottom, left, right) in LR pixels, bottom/right exclusive
Ratio = str | float  # "auto", "exif" or a number

WIDER = 0.95  # a measured ratio below this: the "reference" is the wider view (swapped inputs)
OUTSIDE_TOLERANCE = 0.1  # footprint may stick out of the wide image by this fraction (then clipped)


@dataclass
class CaptureInputs:
    """What a zoom model needs for a whole capture, plus the wide file's form for the result."""

    lr: torch.Tensor  # (3, H, W): the whole wide image
    refs: list[torch.Tensor]  # widest first; refs[i] is (3, zooms[i] * box height, ... width)
    ref_boxes: list[Box]
    zooms: tuple[int, ...]
    wide: Image  # the decoded wide file: bit depth, ICC profile, gray-ness for writing the result
    meta: dict = field(default_factory=dict)


def _hwc(image: Image) -> np.ndarray:
    color = image.color.expand(3, -1, -1) if image.is_gray else image.color
    return np.ascontiguousarray(color.permute(1, 2, 0).numpy())


def _ratio_used(ratio: Ratio, estimated: float, exif: float | None, wide: Path, ref: Path) -> float:
    if ratio == "auto":
        return estimated
    if ratio == "exif":
        if exif is None:
            raise ZoomsrError(
                f"no focal lengths in the EXIF of '{wide.name}' and '{ref.name}'; use --ratio auto"
            )
        return exif
    return float(ratio)


def _checked_ratio(ratio: Ratio) -> Ratio:
    if ratio in ("auto", "exif"):
        return ratio
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise ZoomsrError(f"zoom ratio must be auto, exif or a number, got {ratio!r}") from None
    if not value > 1.0:
        raise ZoomsrError(
            f"zoom ratio {value:g} must be above 1 (the reference is the zoomed view)"
        )
    return value


def _scaled_about(hom: np.ndarray, centre: np.ndarray, factor: float) -> np.ndarray:
    """``hom`` followed by a scaling by ``factor`` about ``centre`` (wide pixels)."""
    cx, cy = centre
    s = np.array([[factor, 0, cx * (1 - factor)], [0, factor, cy * (1 - factor)], [0, 0, 1]])
    return s @ hom


@dataclass
class _Match:
    path: Path
    camera: np.ndarray | None  # (h, w, 3); dropped once warped
    hom: np.ndarray  # camera -> wide pixels
    sampling: float  # camera pixels per wide pixel
    estimated: float  # measured zoom ratio
    inliers: int


def _match(wide: np.ndarray, camera: np.ndarray, wide_path: Path, ref_path: Path) -> _Match:
    try:
        hom, sampling, estimated, inliers = _camera_to_wide(wide, camera)
    except DataError as err:
        raise DataError(f"'{ref_path.name}' does not match '{wide_path.name}': {err}") from None
    if estimated < WIDER:
        raise DataError(
            f"'{ref_path.name}' shows a wider view than '{wide_path.name}' (zoom ratio "
            f"{estimated:.2f}); give the widest capture first and the narrower ones with --ref"
        )
    if estimated < MIN_RATIO:
        raise DataError(
            f"'{ref_path.name}' shows about the same view as '{wide_path.name}' (zoom ratio "
            f"{estimated:.2f}, below {MIN_RATIO}); a reference must be a zoomed-in capture"
        )
    return _Match(ref_path, camera, hom, sampling, estimated, inliers)


def _reference(
    wide: np.ndarray, lr_t: torch.Tensor, m: _Match, zoom: int, ratio: Ratio, wide_path: Path
) -> tuple[torch.Tensor, Box, dict]:
    """One matched reference camera -> (Ref at ``zoom`` x its box, box in LR pixels, meta)."""
    wh, ww = wide.shape[:2]
    ch, cw = m.camera.shape[:2]
    exif = exif_focal_ratio(wide_path, m.path)
    r = _ratio_used(ratio, m.estimated, exif, wide_path, m.path)
    hom, sampling = m.hom, m.sampling
    centre = apply_homography(hom, np.array([[cw / 2 - 0.5, ch / 2 - 0.5]]))[0]
    if r != m.estimated:  # a given ratio overrides the measured scale, about the matched centre
        hom = _scaled_about(hom, centre, m.estimated / r)
        sampling *= r / m.estimated

    # The footprint: the camera's view, as an axis-aligned box of whole wide pixels.
    h, w = round(ch / sampling), round(cw / sampling)
    top, left = round(centre[1] + 0.5 - h / 2), round(centre[0] + 0.5 - w / 2)
    outside = max(-top, -left, top + h - wh, left + w - ww, 0)
    if h > wh or w > ww or outside > OUTSIDE_TOLERANCE * min(h, w):
        raise DataError(
            f"the view of '{m.path.name}' ({w}x{h} wide pixels at ratio {r:.2f}) is not inside "
            f"'{wide_path.name}' ({ww}x{wh}); is it the right pair, and the right --ratio?"
        )
    top, left = min(max(top, 0), wh - h), min(max(left, 0), ww - w)
    under = np.ascontiguousarray(wide[top : top + h, left : left + w])
    image, valid, psnr_homography = _align(m.camera, hom, sampling, zoom, under, top, left)

    # Trim borders without a camera source, in whole LR pixels: box x zoom == Ref size exactly.
    mt, mb, ml, mr = _trim(_valid_lr(valid, w, h))
    rows, cols = slice(zoom * mt, zoom * (h - mb)), slice(zoom * ml, zoom * (w - mr))
    image, valid = np.ascontiguousarray(image[rows, cols]), valid[rows, cols]
    box = (top + mt, top + h - mb, left + ml, left + w - mr)
    lr_box = lr_t[:, box[0] : box[1], box[2] : box[3]]
    ref, ref_small, colour = _colour_matched(image, valid, lr_box)
    meta = {
        "file": m.path.name,
        "zoom": zoom,
        "estimated_ratio": round(m.estimated, 4),
        "exif_ratio": round(exif, 4) if exif else None,
        "ratio_used": round(r, 4),
        "box": list(box),
        "inliers": m.inliers,
        "homography_to_wide": np.round(hom, 8).tolist(),
        "trimmed_lr_px": [mt, mb, ml, mr],
        "colour": _rounded(colour),
        "psnr_vs_wide": {
            "homography": round(psnr_homography, 3),
            "aligned": round(_psnr(lr_box.numpy(), ref_small.numpy()), 3),
        },
        "valid_fraction": round(float(valid.mean()), 4),
    }
    return ref, box, meta


def prepare_zoom_inputs(
    wide_path: str | Path,
    ref_paths: Sequence[str | Path],
    zooms: Sequence[int],
    ratio: Ratio | Sequence[Ratio] = "auto",
    progress: Callable = lambda it, _desc: it,
) -> CaptureInputs:
    """Read a wide capture and its reference captures into a zoom model's inputs.

    ``zooms`` are the model's Ref zooms, widest first (``(4,)`` for a x4 dual model, ``(2, 4)``
    for SelfTZSR++); the references may come in any order: they are sorted by their measured
    zoom ratio (widest first). ``ratio`` is one value for all references or one per reference,
    in the order given: ``"auto"`` (feature matching), ``"exif"`` or a number.
    """
    wide_path, paths = Path(wide_path), [Path(p) for p in ref_paths]
    zooms = tuple(int(z) for z in zooms)
    if len(paths) != len(zooms):
        raise ZoomsrError(
            f"the model takes {len(zooms)} reference(s) (x{', x'.join(map(str, zooms))}), "
            f"got {len(paths)}"
        )
    ratios = list(ratio) if isinstance(ratio, Sequence) and not isinstance(ratio, str) else None
    if ratios is not None and len(ratios) != len(paths):
        raise ZoomsrError(f"got {len(ratios)} zoom ratios for {len(paths)} references")
    given = [_checked_ratio(r) for r in (ratios or [ratio] * len(paths))]
    wide_image = read_image(wide_path)
    cameras = [_hwc(read_image(p)) for p in paths]  # every file read before the long work
    wide = _hwc(wide_image)
    lr = torch.from_numpy(wide).permute(2, 0, 1).contiguous()
    matches = [
        (_match(wide, c, wide_path, p), r) for c, p, r in zip(cameras, paths, given, strict=True)
    ]
    del cameras
    matches.sort(key=lambda mr: mr[0].estimated)  # widest first, as the models take them

    refs, boxes, metas = [], [], []
    for zoom, (m, r) in zip(zooms, progress(matches, "prepare"), strict=True):
        ref, box, meta = _reference(wide, lr, m, zoom, r, wide_path)
        m.camera = None  # free the full-size camera image
        refs.append(ref)
        boxes.append(box)
        metas.append(meta)
    meta = {
        "wide": wide_path.name,
        "wide_size": [lr.shape[-1], lr.shape[-2]],
        "zooms": list(zooms),
        "box_format": "[top, bottom, left, right) in LR (wide) pixels",
        "refs": metas,
    }
    return CaptureInputs(lr, refs, boxes, zooms, wide_image, meta)
