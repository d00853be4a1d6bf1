import json

import cv2
import numpy as np
import pytest
import torch

from zoomsr.cli.main import main
from zoomsr.data.prepare import prepare_capture
from zoomsr.io import read_image, write_image
from zoomsr.metrics.regions import centre_box


def _small_copy(src, dst, factor=4):
    """The capture, upright and area-downscaled (EXIF orientation applied by read_image)."""
    img = read_image(src).color.permute(1, 2, 0).numpy()
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    write_image(dst, torch.from_numpy(small).permute(2, 0, 1))
    return dst


@pytest.fixture(scope="module")
def iphone_small(shared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("iphone")
    pair = shared("data", "dualzoom", "iphone11pro_IMG_20")
    return _small_copy(pair / "wide.jpg", folder / "wide.png"), _small_copy(
        pair / "tele.jpg", folder / "tele.png"
    )


def test_prepare_real_pair_finds_ratio_and_aligns(iphone_small):
    wide, tele = iphone_small
    sample = prepare_capture(wide, tele, "auto", debug=True)
    meta = sample.meta
    assert meta["ratio"] == 2 and abs(meta["estimated_ratio"] - 2.0) / 2.0 < 0.03
    psnr = meta["psnr_lr_vs_gt_down"]
    assert psnr["aligned"] >= psnr["naive_centre_crop"] + 6
    h, w = sample.lr.shape[-2:]
    assert sample.gt.shape[-2:] == (2 * h, 2 * w) and sample.mask.shape[-2:] == (2 * h, 2 * w)
    box = centre_box(h, w, 2)
    assert torch.equal(
        sample.refs["Ref"],
        sample.gt[
            :, 2 * box.top : 2 * (box.top + box.height), 2 * box.left : 2 * (box.left + box.width)
        ],
    )
    assert sample.debug.shape == (3, h, 3 * w)


def test_prepare_cli_writes_a_sample_and_refuses_bad_pairs(iphone_small, tmp_path, capsys, shared):
    wide, tele = iphone_small
    out = tmp_path / "sample"
    assert main(["prepare", "--wide", str(wide), "--tele", str(tele), "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {
        "LR.png",
        "GT.png",
        "Ref.png",
        "mask.png",
        "meta.json",
    }
    assert json.loads((out / "meta.json").read_text())["ratio"] == 2
    assert main(["prepare", "--wide", str(wide), "--tele", str(tele), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    cases = [
        ((tele, wide), "swap --wide and --tele"),
        ((wide, wide), "below 1.2"),
    ]
    photo = _small_copy(
        shared("data", "photos", "roof_tiles.jpg"), tmp_path / "other.png", factor=2
    )
    cases.append(((wide, photo), "scene"))
    for (w_, t_), message in cases:
        dst = tmp_path / f"bad_{message[:4]}"
        assert main(["prepare", "--wide", str(w_), "--tele", str(t_), "-o", str(dst)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zoomsr: ") and message in err and err.count("\n") == 1, err
        assert not dst.exists()


def test_colour_match_recovers_gain_and_offset():
    from zoomsr.ops.color import apply_colour_match, fit_colour_match

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 64, 64, generator=g) * 0.8 + 0.1
    source = ((target - 0.05) / 1.1).clamp(0, 1)
    params = fit_colour_match(source, target)
    before = (source - target).abs().mean()
    assert (apply_colour_match(source, params) - target).abs().mean() < 0.3 * before
    assert params["luma_a"] == pytest.approx(1.1, abs=0.05)
    assert not np.isnan(params["luma_a"])


def test_prepare_triple_with_a_middle_camera(iphone_small, tmp_path):
    # A x4 "tele" made from the real tele: its centre half, upsampled 2x (the real tele plays the middle camera).
    wide, tele = iphone_small
    t = read_image(tele).color
    h, w = t.shape[-2:]
    centre = t[:, h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2]
    tele4 = write_image(
        tmp_path / "tele4.png",
        torch.nn.functional.interpolate(centre[None], scale_factor=2, mode="bicubic")[0].clamp(
            0, 1
        ),
    )
    sample = prepare_capture(wide, tele4, "auto", mid_path=tele)
    lh, lw = sample.lr.shape[-2:]
    assert sample.meta["ratio"] == 4 and sample.meta["refs"] == [2, 4]
    assert sample.views["View2x"].shape[-2:] == (2 * lh, 2 * lw)
    assert set(sample.refs) == {"Ref2x", "Ref4x"} and all(
        r.shape[-2:] == (lh, lw) for r in sample.refs.values()
    )
    from zoomsr.data.prepare import write_prepared
    from zoomsr.data.zoom import read_zoom_sample

    loaded = read_zoom_sample(write_prepared(sample, tmp_path / "triple"))
    assert loaded.refs == (2, 4) and tuple(loaded.views[2].shape[-2:]) == (2 * lh, 2 * lw)


@pytest.mark.slow
def test_prepare_full_resolution_iphone_pair(shared, tmp_path):
    pair = shared("data", "dualzoom", "iphone11pro_IMG_20")
    sample = prepare_capture(pair / "wide.jpg", pair / "tele.jpg", "auto")
    psnr = sample.meta["psnr_lr_vs_gt_down"]
    assert (
        abs(sample.meta["estimated_ratio"] - 2) < 0.06
        and psnr["aligned"] >= psnr["naive_centre_crop"] + 6
    )
