"""Real captures to a training/test sample: the wide shot's LR, the aligned tele GT and its Ref(s).

For zoom ratio r (tele pixels per wide pixel over the same view), with k = round(r) the SR factor:
1. the tele's footprint in the wide shot is found by SIFT matching and a RANSAC homography (phones'
   tele views are not exactly centred: we crop where it really is);
2. LR = the axis-aligned wide crop covering the tele's view;
3. GT = the tele warped onto LR's geometry at k x LR's size (the homography), refined by dense
   optical flow (OpenCV DIS, computed at reduced resolution, upsampled) and backward-warped;
   pixels that have no tele source are masked and the invalid borders trimmed;
4. the GT's brightness and white balance are matched to the LR (never the reverse), as the
   SelfDZSR pre-processing does;
5. Ref = the GT pixels of the centre 1/k of LR's view, at LR's pixel size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from zoomsr.errors import DataError, ZoomsrError
from zoomsr.io import read_image, write_image
from zoomsr.metrics.regions import centre_box
from zoomsr.ops.color import apply_colour_match, fit_colour_match
from zoomsr.ops.flow import dis_flow
from zoomsr.ops.geometry import (
    apply_homography,
    homography_scale,
    match_homography,
    resize_long_side,
    scale_homography,
    to_gray_u8,
)

MIN_RATIO = 1.2
MATCH_LONG_SIDE = 1600  # feature matching resolution
FLOW_LONG_SIDE = 1024  # optical flow resolution (LR-sized images are downscaled to this)


@dataclass
class PreparedCapture:
    lr: torch.Tensor  # (3, h, w)
    gt: torch.Tensor  # (3, k h, k w)
    refs: dict[str, torch.Tensor]  # "Ref" (dual) or "Ref2x", "Ref4x", ... each (3, h, w)
    mask: torch.Tensor  # (1, k h, k w), 1 = GT pixel has a tele source
    meta: dict = field(default_factory=dict)
    debug: torch.Tensor | None = None
    views: dict[str, torch.Tensor] = field(default_factory=dict)  # "View2x": middle camera at 2x LR


def exif_focal_ratio(wide_path: Path, tele_path: Path) -> float | None:
    """Tele/wide ratio of the 35 mm-equivalent focal lengths (EXIF 41989), else of FocalLength."""
    from PIL import Image as PILImage

    def focal(path):
        try:
            with PILImage.open(path) as im:
                exif = im.getexif().get_ifd(0x8769)
        except Exception:
            return None, None
        return exif.get(41989), exif.get(37386)

    (w35, wf), (t35, tf) = focal(wide_path), focal(tele_path)
    if w35 and t35:
        return float(t35) / float(w35)
    if wf and tf:  # physical focal lengths: right only when both sensors are the same size
        return float(tf) / float(wf)
    return None


def _rgb(path: Path) -> np.ndarray:
    color = read_image(path).color
    color = color.expand(3, -1, -1) if color.shape[0] == 1 else color
    return np.ascontiguousarray(color.permute(1, 2, 0).numpy())


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a - b) ** 2
    mse = d[mask.astype(bool)].mean() if mask is not None else d.mean()
    return float(10 * math.log10(1.0 / max(mse, 1e-12)))


def _down(img: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    return cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA)


def _trim(mask_lr: np.ndarray, max_fraction: float = 0.25) -> tuple[int, int, int, int]:
    """Margins (top, bottom, left, right) that leave no invalid pixel on the borders."""
    h, w = mask_lr.shape
    t, b, lft, r = 0, h, 0, w
    for _ in range(h + w):
        changed = False
        if t < b and not mask_lr[t, lft:r].all() and t < h * max_fraction:
            t, changed = t + 1, True
        if b > t and not mask_lr[b - 1, lft:r].all() and h - b < h * max_fraction:
            b, changed = b - 1, True
        if lft < r and not mask_lr[t:b, lft].all() and lft < w * max_fraction:
            lft, changed = lft + 1, True
        if r > lft and not mask_lr[t:b, r - 1].all() and w - r < w * max_fraction:
            r, changed = r - 1, True
        if not changed:
            break
    return t, h - b, lft, w - r


def _camera_to_wide(wide: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    """Homography camera -> wide, the camera's sampling (its pixels per wide pixel) and zoom ratio."""
    w_small, fw = resize_long_side(wide, MATCH_LONG_SIDE)
    c_small, fc = resize_long_side(camera, MATCH_LONG_SIDE)
    hom, inliers = match_homography(to_gray_u8(c_small), to_gray_u8(w_small))
    hom = scale_homography(hom, fc, fw)
    ch, cw = camera.shape[:2]
    sampling = 1.0 / homography_scale(hom, (cw / 2, ch / 2))
    return hom, sampling, sampling * wide.shape[1] / cw, inliers


def _align(
    camera: np.ndarray,
    hom_cw: np.ndarray,
    sampling: float,
    zoom: int,
    lr: np.ndarray,
    top: int,
    left: int,
):
    """Warp a camera's image onto LR's geometry at ``zoom`` x LR's size.

    A homography first, then dense DIS flow (at reduced resolution, upsampled) for parallax and
    lens differences. Returns (image (zoom h, zoom w, 3), validity mask, PSNR after the homography).
    """
    h, w = lr.shape[:2]
    ch, cw = camera.shape[:2]
    # Pixel (X, Y) -> LR (X + 0.5)/z - 0.5 -> wide (+ left, top) -> camera (inverse homography).
    to_wide = np.array(
        [[1 / zoom, 0, 0.5 / zoom - 0.5 + left], [0, 1 / zoom, 0.5 / zoom - 0.5 + top], [0, 0, 1]],
        dtype=np.float64,
    )
    to_cam = np.linalg.inv(hom_cw) @ to_wide
    pre = min(1.0, zoom / sampling)
    if pre < 0.8:  # shrinking the camera image a lot: area-filter first rather than alias
        camera = cv2.resize(
            camera, (round(cw * pre), round(ch * pre)), interpolation=cv2.INTER_AREA
        )
        to_cam = (
            np.array([[pre, 0, 0.5 * pre - 0.5], [0, pre, 0.5 * pre - 0.5], [0, 0, 1]]) @ to_cam
        )
    size = (zoom * w, zoom * h)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = cv2.warpPerspective(camera, to_cam, size, flags=flags, borderValue=0)
    valid = cv2.warpPerspective(np.ones(camera.shape[:2], np.float32), to_cam, size, flags=flags)

    small = _down(out, (w, h))
    psnr_homography = _psnr(lr, small, _down(valid, (w, h)) > 0.999)
    f = min(1.0, FLOW_LONG_SIDE / max(h, w))
    fs = (max(8, round(w * f)), max(8, round(h * f)))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(_down(a, fs))).permute(2, 0, 1)  # noqa: E731
    flow = dis_flow(to_t(lr), to_t(small)).permute(1, 2, 0).numpy()
    flow = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    flow *= np.array([size[0] / fs[0], size[1] / fs[1]], dtype=np.float32)
    gx, gy = np.meshgrid(np.arange(size[0], dtype=np.float32), np.arange(size[1], dtype=np.float32))
    map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
    del flow, gx, gy
    out = cv2.remap(out, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
    valid = cv2.remap(valid, map_x, map_y, cv2.INTER_LINEAR, borderValue=0) > 0.999
    return out, valid, psnr_homography


def _valid_lr(valid: np.ndarray, w: int, h: int) -> np.ndarray:
    """An LR pixel is valid when all the pixels it covers are."""
    return cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA) == 1


def _colour_matched(
    image: np.ndarray, valid: np.ndarray, lr_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Match an aligned camera image to the LR (never the reverse); returns (image, its LR-size copy, fit)."""
    h, w = lr_t.shape[-2:]
    small = torch.from_numpy(_down(image, (w, h))).permute(2, 0, 1)
    valid_small = torch.from_numpy(_valid_lr(valid, w, h))
    fit = fit_colour_match(small, lr_t, valid_small)
    full = apply_colour_match(torch.from_numpy(image).permute(2, 0, 1), fit)
    return full.contiguous(), apply_colour_match(small, fit), fit


def _rounded(fit: dict) -> dict:
    return {
        k: (round(v, 6) if isinstance(v, float) else [round(g, 6) for g in v])
        for k, v in fit.items()
    }


def _crop_box(x: torch.Tensor, box, zoom: int) -> torch.Tensor:
    return x[
        :,
        zoom * box.top : zoom * (box.top + box.height),
        zoom * box.left : zoom * (box.left + box.width),
    ]


def prepare_capture(
    wide_path: str | Path,
    tele_path: str | Path,
    ratio: str | float = "auto",
    debug: bool = False,
    mid_path: str | Path | None = None,
) -> PreparedCapture:
    """Make (LR, GT, Ref, mask, meta) from a wide and a tele capture of the same scene.

    With ``mid_path`` (a third, middle camera) the sample is a triple: ``views`` gets the middle
    camera aligned to LR's geometry (``View{z}x``), and Ref{z}x / Ref{k}x are the centre crops.
    """
    wide_path, tele_path = Path(wide_path), Path(tele_path)
    wide, tele = _rgb(wide_path), _rgb(tele_path)
    hom_tw, sampling, estimated, inliers = _camera_to_wide(wide, tele)
    th, tw = tele.shape[:2]
    wh, ww = wide.shape[:2]
    exif = exif_focal_ratio(wide_path, tele_path)
    if estimated < 1.0:
        raise DataError(
            f"the tele image shows a wider view than the wide image (ratio {estimated:.2f}); swap --wide and --tele"
        )
    if ratio == "auto":
        r = estimated
    elif ratio == "exif":
        if exif is None:
            raise ZoomsrError(
                f"no focal lengths in the EXIF of '{wide_path.name}' and '{tele_path.name}'; use --ratio auto"
            )
        r = exif
    else:
        r = float(ratio)
    if r < MIN_RATIO or estimated < MIN_RATIO:
        raise DataError(
            f"zoom ratio {min(r, estimated):.2f} is below {MIN_RATIO}: too little zoom to learn from"
        )
    k = round(r)

    # LR: the wide crop over the tele's view (its size set by the measured sampling).
    centre_w = apply_homography(hom_tw, np.array([[tw / 2 - 0.5, th / 2 - 0.5]]))[0]
    h, w = round(th / sampling), round(tw / sampling)
    top, left = round(centre_w[1] + 0.5 - h / 2), round(centre_w[0] + 0.5 - w / 2)
    if max(-top, -left, top + h - wh, left + w - ww, 0) > 0.1 * min(h, w):
        raise DataError("the tele view is not inside the wide view (no usable overlap)")
    top, left = min(max(top, 0), wh - h), min(max(left, 0), ww - w)
    h, w = min(h, wh - top), min(w, ww - left)
    lr = np.ascontiguousarray(wide[top : top + h, left : left + w])

    # Naive baseline for the record: the centred crop by the ratio, the tele simply resized.
    nh, nw = round(wh / r), round(ww / r)
    naive_lr = wide[(wh - nh) // 2 : (wh - nh) // 2 + nh, (ww - nw) // 2 : (ww - nw) // 2 + nw]
    psnr_before = _psnr(naive_lr, _down(tele, (nw, nh)))

    gt, valid, psnr_homography = _align(tele, hom_tw, sampling, k, lr, top, left)
    del tele
    mid = None
    if mid_path is not None:
        mid_img = _rgb(Path(mid_path))
        hom_mw, mid_sampling, mid_ratio, _ = _camera_to_wide(wide, mid_img)
        z = round(mid_ratio)
        if not 1 < z < k or k % z:
            raise DataError(
                f"the middle camera's zoom ({mid_ratio:.2f}) must lie strictly between 1 and the tele's ({k}) and divide it"
            )
        view, view_valid, _ = _align(mid_img, hom_mw, mid_sampling, z, lr, top, left)
        mid = (z, view, view_valid, round(mid_ratio, 4))
        del mid_img
    del wide

    # Trim the borders that have invalid pixels, in whole LR pixels.
    valid_lr = _valid_lr(valid, w, h)
    if mid is not None:
        valid_lr &= _valid_lr(mid[2], w, h)
    mt, mb, ml, mr = _trim(valid_lr)
    # A multiple of the ratio, so every Ref's centre box is whole and exactly LR-sized.
    mb += (h - mt - mb) % k
    mr += (w - ml - mr) % k
    lr = lr[mt : h - mb, ml : w - mr]
    gt = gt[k * mt : k * (h - mb), k * ml : k * (w - mr)]
    valid = valid[k * mt : k * (h - mb), k * ml : k * (w - mr)]
    h, w = lr.shape[:2]

    lr_t = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).contiguous()
    gt_t, gt_small, colour = _colour_matched(gt, valid, lr_t)
    del gt
    mask_small = torch.from_numpy(_valid_lr(valid, w, h))[None].expand(3, -1, -1).numpy()
    psnr_after = _psnr(lr_t.numpy(), gt_small.numpy(), mask_small)

    box = centre_box(h, w, k)
    refs = {f"Ref{k}x" if mid else "Ref": _crop_box(gt_t, box, k).contiguous()}
    ref_boxes = {next(iter(refs)): [box.top, box.top + box.height, box.left, box.left + box.width]}
    views = {}
    meta_mid = {}
    if mid is not None:
        z, view, view_valid, mid_ratio = mid
        view = view[z * mt : z * (h + mt), z * ml : z * (w + ml)]
        view_valid = view_valid[z * mt : z * (h + mt), z * ml : z * (w + ml)]
        view_t, _, view_colour = _colour_matched(view, view_valid, lr_t)
        zbox = centre_box(h, w, z)
        views[f"View{z}x"] = view_t
        refs = {f"Ref{z}x": _crop_box(view_t, zbox, z).contiguous(), **refs}
        ref_boxes = {
            f"Ref{z}x": [zbox.top, zbox.top + zbox.height, zbox.left, zbox.left + zbox.width],
            **ref_boxes,
        }
        meta_mid = {
            "mid": Path(mid_path).name,
            "mid_estimated_ratio": mid_ratio,
            "mid_colour": _rounded(view_colour),
        }

    meta = {
        "ratio": k,
        "refs": [int(name[3:-1]) for name in refs] if mid else [k],
        "estimated_ratio": round(estimated, 4),
        "exif_ratio": round(exif, 4) if exif else None,
        "ratio_used": round(r, 4),
        "wide": wide_path.name,
        "tele": tele_path.name,
        **meta_mid,
        "lr_box_in_wide": [top + mt, top + mt + h, left + ml, left + ml + w],
        "box_format": "[top, bottom, left, right) in pixels",
        "ref_boxes": ref_boxes,
        "homography_tele_to_wide": np.round(hom_tw, 8).tolist(),
        "inliers": inliers,
        "trimmed_lr_px": [mt, mb, ml, mr],
        "colour": _rounded(colour),
        "psnr_lr_vs_gt_down": {
            "naive_centre_crop": round(psnr_before, 3),
            "homography": round(psnr_homography, 3),
            "aligned": round(psnr_after, 3),
        },
        "valid_fraction": round(float(valid.mean()), 4),
    }
    dbg = None
    if debug:
        diff = ((lr_t - gt_small).abs() * 4).clamp(0, 1)
        dbg = torch.cat([lr_t, gt_small, diff], dim=-1)
    mask = torch.from_numpy(valid.astype(np.float32))[None]
    return PreparedCapture(lr_t, gt_t, refs, mask, meta, dbg, views)


def write_prepared(sample: PreparedCapture, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write LR/GT/Ref/mask PNGs and meta.json (the layout zoom datasets read)."""
    from zoomsr.data.zoom import write_zoom_sample

    out = Path(out_dir)
    if (out / "LR.png").exists() and not overwrite:
        raise ZoomsrError(f"'{out}' already holds a sample; pass --overwrite to replace it")
    write_image(out / "mask.png", sample.mask, overwrite=True)
    if sample.debug is not None:
        dbg = sample.debug
        factor = min(1.0, 3072 / dbg.shape[-1])
        if factor < 1:
            dbg = torch.nn.functional.interpolate(dbg[None], scale_factor=factor, mode="area")[0]
        write_image(out / "debug.png", dbg, overwrite=True)
    # meta.json last (inside write_zoom_sample): a folder with meta.json is complete.
    images = {"LR": sample.lr, "GT": sample.gt, **sample.views, **sample.refs}
    return write_zoom_sample(out, images, sample.meta)
