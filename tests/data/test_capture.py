"""Whole-capture preparation for zoom inference, on the bundled real iPhone sample."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zoomsr.data.capture import prepare_zoom_inputs
from zoomsr.errors import ZoomsrError
from zoomsr.io import read_image, write_image

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "zoom"
WIDE, TELE = SAMPLE / "wide.jpg", SAMPLE / "tele.jpg"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def _check_geometry(capture, ratio: float, tol_px: int = 4):
    h, w = capture.lr.shape[-2:]
    for ref, box, zoom in zip(capture.refs, capture.ref_boxes, capture.zooms, strict=True):
        top, bottom, left, right = box
        assert all(isinstance(v, int) for v in box)
        assert 0 <= top < bottom <= h and 0 <= left < right <= w
        # The footprint of a view zoomed by `ratio`, less at most a few trimmed border pixels.
        assert (
            0 <= h / ratio - (bottom - top) <= tol_px and 0 <= w / ratio - (right - left) <= tol_px
        )
        assert tuple(ref.shape) == (3, zoom * (bottom - top), zoom * (right - left))


def test_sample_footprint_and_ref_size_at_the_model_scale():
    wide = read_image(WIDE)
    x4 = prepare_zoom_inputs(WIDE, [TELE], (4,))
    assert torch.equal(x4.lr, wide.color) and x4.wide.width == 480
    meta = x4.meta["refs"][0]
    assert abs(meta["estimated_ratio"] - 2.0) < 0.1 and meta["exif_ratio"] == 2.0
    _check_geometry(x4, meta["estimated_ratio"])
    # The tele covers the wide image's centre (the sample was cut so).
    top, bottom, left, right = x4.ref_boxes[0]
    assert abs((top + bottom) / 2 - 180) < 6 and abs((left + right) / 2 - 240) < 6
    # Aligned and colour-matched: the Ref, brought down to LR pixels, looks like the wide there.
    lr_box = x4.lr[:, top:bottom, left:right]
    small = F.interpolate(x4.refs[0][None], size=lr_box.shape[-2:], mode="area")[0]
    assert _psnr(small, lr_box) > 24
    assert meta["psnr_vs_wide"]["aligned"] > meta["psnr_vs_wide"]["homography"]

    # A x2 model gets the same footprint at half the Ref resolution.
    x2 = prepare_zoom_inputs(WIDE, [TELE], (2,))
    assert x2.ref_boxes == x4.ref_boxes
    _check_geometry(x2, meta["estimated_ratio"])


def test_ratio_from_exif_or_given_sets_the_footprint():
    exif = prepare_zoom_inputs(WIDE, [TELE], (2,), ratio="exif")
    assert exif.meta["refs"][0]["ratio_used"] == 2.0
    _check_geometry(exif, 2.0)
    given = prepare_zoom_inputs(WIDE, [TELE], (2,), ratio=2.4)
    _check_geometry(given, 2.4)
    with pytest.raises(ZoomsrError, match="must be above 1"):
        prepare_zoom_inputs(WIDE, [TELE], (2,), ratio=0.8)


def test_triple_refs_are_sorted_widest_first(tmp_path):
    # A narrower "tele": the real tele's central 2/3 (zoom ratio ~2.9 to the wide); the real
    # tele plays the middle camera (~2x).
    t = read_image(TELE).color
    narrow = write_image(tmp_path / "narrow.png", t[:, 60:300, 80:400])
    cap = prepare_zoom_inputs(WIDE, [narrow, TELE], (2, 4))  # narrowest given first
    assert [m["file"] for m in cap.meta["refs"]] == ["tele.jpg", "narrow.png"]
    assert cap.zooms == (2, 4)
    (t2, b2, l2, r2), (t4, b4, l4, r4) = cap.ref_boxes
    assert t2 <= t4 < b4 <= b2 and l2 <= l4 < r4 <= r2  # the narrow box inside the middle's
    assert abs((r2 - l2) / (r4 - l4) - 1.5) < 0.1
    for ref, box, zoom in zip(cap.refs, cap.ref_boxes, cap.zooms, strict=True):
        assert tuple(ref.shape) == (3, zoom * (box[1] - box[0]), zoom * (box[3] - box[2]))


def test_mismatched_captures_are_named(tmp_path, shared):
    with pytest.raises(ZoomsrError, match=r"wider view than 'tele\.jpg'"):
        prepare_zoom_inputs(TELE, [WIDE], (4,))
    with pytest.raises(ZoomsrError, match="about the same view"):
        prepare_zoom_inputs(WIDE, [WIDE], (4,))
    with pytest.raises(ZoomsrError, match=r"takes 1 reference\(s\).*got 2"):
        prepare_zoom_inputs(WIDE, [TELE, TELE], (4,))
    other = read_image(shared("data", "photos", "airplane.jpg")).color
    small = F.interpolate(other[None], size=(180, 240), mode="area")[0]
    photo = write_image(tmp_path / "other.png", small)
    with pytest.raises(ZoomsrError, match="different scenes"):
        prepare_zoom_inputs(WIDE, [photo], (4,))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(TELE.read_bytes()[:2000])
    with pytest.raises(ZoomsrError, match="cannot read"):
        prepare_zoom_inputs(WIDE, [broken], (4,))


def test_a_view_outside_the_wide_image_is_refused(tmp_path):
    # A "tele" of the wide image's bottom-left corner (ratio 3): at its true ratio it fits; told
    # it is a much wider view (ratio 1.3), its footprint would stick far out of the wide image.
    wide = read_image(WIDE).color
    corner = F.interpolate(wide[None, :, 240:, :160], scale_factor=2, mode="bicubic")[0]
    path = write_image(tmp_path / "corner.png", corner.clamp(0, 1))
    fits = prepare_zoom_inputs(WIDE, [path], (2,))
    _, bottom, left, _ = fits.ref_boxes[0]
    assert bottom >= 356 and left <= 4
    assert abs(fits.meta["refs"][0]["estimated_ratio"] - 3) < 0.05
    with pytest.raises(ZoomsrError, match="is not inside"):
        prepare_zoom_inputs(WIDE, [path], (2,), ratio=1.3)
