"""Simulated captures: geometry, determinism, meta.json and the ``simulate`` CLI."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image as PILImage

from zoomsr.cli.main import main
from zoomsr.data.simulate import (
    DegradationRanges,
    check_refs,
    derive_seed,
    in_lr_frame,
    simulate_capture,
)
from zoomsr.data.zoom import read_zoom_sample
from zoomsr.errors import ZoomsrError
from zoomsr.io import read_image
from zoomsr.ops.resize import imresize


@pytest.fixture(scope="module")
def photo(shared) -> torch.Tensor:
    """A 384 x 320 crop of one shared photo (never the whole image: tests stay fast)."""
    return read_image(shared("data", "photos", "apples.jpg")).color[:, 400:784, 600:920].clone()


def _cut(x: torch.Tensor, zoom: int, box: list[int]) -> torch.Tensor:
    t, b, left, right = box
    return x[:, zoom * t : zoom * b, zoom * left : zoom * right]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_in_lr_frame_undoes_the_recorded_misalignment(photo):
    """With colour, noise and JPEG off, the LR's upscale is much closer to the GT warped into the
    LR's frame than to the captured GT, and as close as a capture with no warp at all is."""
    clean = dict(gain=(1, 1), gamma=(1, 1), shot=(1e-8, 1e-8), jpeg_quality=(95, 95))
    moved = simulate_capture(photo, 4, seed=5, ranges=DegradationRanges(shift=1.0, **clean))
    still = simulate_capture(
        photo, 4, seed=5, ranges=DegradationRanges(shift=0, rotation_deg=0, zoom=0, **clean)
    )
    inner = (slice(None), slice(16, -16), slice(16, -16))  # the reflected border is invented
    aligned = in_lr_frame(moved["GT"], moved["meta"])
    up = imresize(moved["LR"], 4).clamp(0, 1)
    p_aligned, p_captured = _psnr(up[inner], aligned[inner]), _psnr(up[inner], moved["GT"][inner])
    p_still = _psnr(imresize(still["LR"], 4).clamp(0, 1)[inner], still["GT"][inner])
    assert p_aligned > p_captured + 1.0
    assert abs(p_aligned - p_still) < 1.0
    # With no warp the frame is the GT itself; without a recorded warp there is no frame.
    assert torch.allclose(in_lr_frame(still["GT"], still["meta"]), still["GT"], atol=1e-4)
    assert in_lr_frame(moved["GT"], {"ratio": 4}) is None
    # A middle camera has its own warp: undone, then the LR's applied.
    triple = simulate_capture(
        photo, 4, (2, 4), seed=6, ranges=DegradationRanges(shift=1.0, **clean)
    )
    view, lr = triple["View2x"], imresize(triple["LR"], 2).clamp(0, 1)
    aligned_view = in_lr_frame(view, triple["meta"], 2)
    inner2 = (slice(None), slice(8, -8), slice(8, -8))
    assert _psnr(lr[inner2], aligned_view[inner2]) > _psnr(lr[inner2], view[inner2]) + 1.0


@pytest.mark.parametrize("ratio", [2, 4])
def test_dual_geometry(photo, ratio):
    s = simulate_capture(photo, ratio, seed=3)
    lr, gt, ref, meta = s["LR"], s["GT"], s["Ref"], s["meta"]
    h, w = lr.shape[-2:]
    assert gt.shape == (3, ratio * h, ratio * w)
    assert ref.shape == lr.shape  # LR's pixel size ...
    box = meta["ref_boxes"]["Ref"]
    assert (box[1] - box[0], box[3] - box[2]) == (h // ratio, w // ratio)  # ... 1/r of its view
    assert box[0] + box[1] == h and box[2] + box[3] == w  # centred exactly
    assert torch.equal(ref, _cut(gt, ratio, box))  # the GT pixels of that box
    assert meta["ratio"] == ratio and meta["refs"] == [ratio]
    assert [meta["lr_size"], meta["gt_size"]] == [[h, w], [ratio * h, ratio * w]]
    # GT is the photo crop recorded in meta; LR is a mildly degraded, aligned-ish downscale.
    t, b, left, right = meta["simulation"]["photo_box"]
    assert torch.allclose(gt, photo[:, t:b, left:right], atol=0.5 / 255)
    assert 20 < _psnr(lr, imresize(gt, 1 / ratio)) < 45


def test_triple_geometry(photo):
    s = simulate_capture(photo, 4, (2, 4), seed=5)
    lr, gt, view = s["LR"], s["GT"], s["View2x"]
    h, w = lr.shape[-2:]
    assert view.shape == (3, 2 * h, 2 * w) and gt.shape == (3, 4 * h, 4 * w)
    b2, b4 = s["meta"]["ref_boxes"]["Ref2x"], s["meta"]["ref_boxes"]["Ref4x"]
    assert s["Ref2x"].shape == s["Ref4x"].shape == lr.shape
    assert torch.equal(s["Ref2x"], _cut(view, 2, b2))
    assert torch.equal(s["Ref4x"], _cut(gt, 4, b4))
    assert b2 == [h // 4, 3 * h // 4, w // 4, 3 * w // 4]  # centre half
    assert b4 == [3 * h // 8, 5 * h // 8, 3 * w // 8, 5 * w // 8]  # centre quarter, inside b2
    assert s["meta"]["views"] == {"View2x": 2}
    assert set(s["meta"]["simulation"]["cameras"]) == {"LR", "View2x"}


def test_same_seed_same_capture_other_seed_differs(photo):
    a, b = simulate_capture(photo, 2, seed=7), simulate_capture(photo, 2, seed=7)
    c = simulate_capture(photo, 2, seed=8)
    assert a["meta"] == b["meta"] and all(torch.equal(a[k], b[k]) for k in ("LR", "GT", "Ref"))
    assert not torch.equal(a["LR"], c["LR"])
    assert a["meta"]["simulation"]["cameras"] != c["meta"]["simulation"]["cameras"]


def test_meta_records_every_drawn_parameter(photo):
    s = simulate_capture(photo, 4, seed=0, max_size=192)
    meta = json.loads(json.dumps(s["meta"]))  # plain JSON
    assert meta["gt_size"] == [192, 192] and meta["lr_size"] == [48, 48]
    cam = meta["simulation"]["cameras"]["LR"]
    assert set(cam) == {"downscale", "blur", "warp", "colour", "noise", "jpeg"}
    assert {"sigma_x", "sigma_y", "theta"} <= set(cam["blur"])
    assert {"tx", "ty", "rotation_deg", "zoom", "matrix"} <= set(cam["warp"])
    assert len(cam["colour"]["gain"]) == len(cam["colour"]["gamma"]) == 3
    assert {"shot", "read"} <= set(cam["noise"]) and 75 <= cam["jpeg"]["quality"] <= 95
    assert abs(cam["warp"]["tx"]) <= 1 and abs(cam["warp"]["ty"]) <= 1


@pytest.mark.parametrize(
    ("ratio", "refs"), [(1, ()), (2.5, ()), (4, (2,)), (4, (4, 2)), (4, (3, 4)), (4, (1, 4))]
)
def test_bad_ratio_or_refs_refused(ratio, refs):
    with pytest.raises(ZoomsrError):
        check_refs(ratio, refs)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def photos_dir(photo, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (t, left) in {"a": (0, 0), "b": (100, 64)}.items():
        arr = (photo[:, t : t + 200, left : left + 256] * 255).round().byte().permute(1, 2, 0)
        PILImage.fromarray(arr.numpy()).save(folder / f"{name}.png")
    return folder


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1, err
    return err


def test_cli_writes_sample_folders(photos_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    argv = ["simulate", "--photos", str(photos_dir), "--ratio", "4", "--refs", "2,4"]
    assert main([*argv, "-o", str(out), "--seed", "1"]) == 0
    assert "wrote 2" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    files = sorted(p.name for p in (out / "a").iterdir())
    assert files == ["GT.png", "LR.png", "Ref2x.png", "Ref4x.png", "View2x.png", "meta.json"]
    meta = json.loads((out / "a" / "meta.json").read_text())
    assert meta["simulation"]["photo"] == "a.png" and meta["refs"] == [2, 4]
    # The files hold exactly what simulate_capture returns for the photo's derived seed.
    photo_a = read_image(photos_dir / "a.png").color
    expected = simulate_capture(photo_a, 4, (2, 4), derive_seed(1, "a"))
    for stem in ("LR", "GT", "View2x", "Ref2x", "Ref4x"):
        assert torch.equal(read_image(out / "a" / f"{stem}.png").color, expected[stem]), stem
    sample = read_zoom_sample(out / "b")
    assert sample.refs == (2, 4) and sample.lr.dtype == torch.uint8
    # A non-empty output is refused without --overwrite, accepted with it.
    assert main([*argv, "-o", str(out), "-q"]) == 2
    assert "not empty" in _one_error_line(capsys)
    assert main([*argv, "-o", str(out), "-q", "--overwrite", "--max-size", "128"]) == 0
    assert read_image(out / "a" / "GT.png").color.shape == (3, 128, 128)


@pytest.mark.parametrize(
    "extra",
    [
        ["--ratio", "1.1"],
        ["--ratio", "2.5"],
        ["--ratio", "x"],
        ["--ratio", "4", "--refs", "2"],
        ["--ratio", "4", "--refs", "3,4"],
        ["--ratio", "4", "--max-size", "0"],
    ],
)
def test_cli_refuses_bad_arguments_and_writes_nothing(photos_dir, tmp_path, capsys, extra):
    out = tmp_path / "sim"
    assert main(["simulate", "--photos", str(photos_dir), "-o", str(out), *extra]) == 2
    _one_error_line(capsys)
    assert not out.exists()
