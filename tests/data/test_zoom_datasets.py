"""Zoom datasets: training patches (x2, x4, triple), determinism and test inputs."""

from __future__ import annotations

import pytest
import torch

from zoomsr.data.simulate import simulate_capture
from zoomsr.data.zoom import (
    TripleZoomTrainSet,
    ZoomSample,
    ZoomTrainSet,
    load_zoom_pairs,
    load_zoom_sample,
    load_zoom_samples,
    pad_amounts,
    write_zoom_sample,
)
from zoomsr.errors import DataError
from zoomsr.io import read_image
from zoomsr.ops.resize import imresize


def coded_sample(h: int, w: int, ratio: int, refs: tuple[int, ...] = ()) -> ZoomSample:
    """A sample whose pixels name their LR position: channel 0 = LR row, 1 = LR column.

    At zoom z, pixel (i, j) holds the LR pixel (i // z, j // z) that contains it, so any patch,
    window or flip can be checked against the LR exactly.
    """
    refs = refs or (ratio,)

    def image(z: int) -> torch.Tensor:
        rows = (torch.arange(h * z) // z).view(-1, 1).expand(h * z, w * z)
        cols = (torch.arange(w * z) // z).view(1, -1).expand(h * z, w * z)
        sub = (torch.arange(h * z) % z).view(-1, 1) * z + (torch.arange(w * z) % z).view(1, -1)
        return torch.stack([rows, cols, sub]).to(torch.uint8)

    views = {a: image(a) for a in refs[:-1]}
    return ZoomSample("coded", image(1), image(ratio), ratio, refs, views)


def _at(lr: torch.Tensor, zoom: int, size: int) -> torch.Tensor:
    """The LR pixels under each pixel of a (size x size) image at ``zoom`` (channels 0, 1)."""
    idx = torch.arange(size) // zoom
    return lr[:2][:, idx][:, :, idx]


def _cut(x: torch.Tensor, zoom: int, box) -> torch.Tensor:
    t, b, left, right = (int(v) for v in box)
    return x[..., zoom * t : zoom * b, zoom * left : zoom * right]


@pytest.mark.parametrize("ratio", [2, 4])
def test_dual_patches_geometry(ratio):
    ds = ZoomTrainSet([coded_sample(120, 100, ratio)], ratio, lr_patch=48, seed=1)
    q = 48 // ratio
    transposed = set()
    for i in range(16):
        it = ds[i]
        lr, gt, ref = it["lr"] * 255, it["gt"] * 255, it["ref"] * 255
        assert lr.shape == (3, 48, 48) and gt.shape == (3, 48 * ratio, 48 * ratio)
        assert ref.shape == (3, 48, 48) and it["lr_ref"].shape == (3, q, q)
        t, b, left, right = it["ref_box"].tolist()
        assert (b - t, right - left) == (q, q)
        assert 0 <= t < b <= 48 and 0 <= left < right <= 48
        # Every GT / Ref pixel sits under the LR pixel it claims, whatever the flips were.
        assert torch.equal(gt[:2], _at(lr, ratio, 48 * ratio))
        assert torch.equal(ref[:2], _at(lr[:, t:b, left:right], ratio, 48))
        assert torch.equal(it["ref"], _cut(it["gt"], ratio, it["ref_box"]))
        assert torch.equal(it["lr_ref"], _cut(it["lr"], 1, it["ref_box"]))
        transposed.add(bool(lr[0, 0, 1] != lr[0, 0, 0]))  # rows vary along the width
    assert transposed == {True, False}  # augmentation does transpose, sometimes


def test_triple_patches_geometry():
    ds = TripleZoomTrainSet([coded_sample(64, 80, 4, (2, 4))], (2, 4), lr_patch=48, seed=2)
    for i in range(12):
        it = ds[i]
        lr = it["lr"] * 255
        assert it["gt"].shape == (3, 192, 192)
        assert it["ref2x"].shape == it["ref4x"].shape == (3, 48, 48)
        c2, c4 = it["coord_ref2x"].tolist(), it["coord_ref4x"].tolist()
        assert c2[1] - c2[0] == c2[3] - c2[2] == 24
        assert 0 <= c2[0] < c2[1] <= 48 and 0 <= c2[2] < c2[3] <= 48
        assert c4 == [c2[0] + 6, c2[1] - 6, c2[2] + 6, c2[3] - 6]  # official nesting
        assert torch.equal(it["ref2x"][:2] * 255, _at(lr[:, c2[0] : c2[1], c2[2] : c2[3]], 2, 48))
        assert torch.equal(it["ref4x"][:2] * 255, _at(lr[:, c4[0] : c4[1], c4[2] : c4[3]], 4, 48))
        assert torch.equal(it["ref4x"], _cut(it["gt"], 4, c4))
        assert torch.equal(it["lr_ref2x"], _cut(it["lr"], 1, c2))


def test_items_are_a_function_of_seed_and_index():
    samples = [coded_sample(60, 60, 2), coded_sample(70, 50, 2)]
    a, b = ZoomTrainSet(samples, 2, seed=4), ZoomTrainSet(samples, 2, seed=4)
    c = ZoomTrainSet(samples, 2, seed=5)
    keys = ("lr", "gt", "ref", "ref_box")
    for i in (0, 7, 10**9):
        assert all(torch.equal(a[i][k], b[i][k]) for k in keys)
    assert any(not torch.equal(a[i]["lr"], c[i]["lr"]) for i in range(4))
    assert any(not torch.equal(a[0]["ref_box"], a[i]["ref_box"]) for i in range(2, 8, 2))
    batch = next(iter(torch.utils.data.DataLoader(a, batch_size=4, sampler=range(8, 12))))
    assert batch["ref_box"].shape == (4, 4) and torch.equal(batch["lr"][1], a[9]["lr"])
    plain = ZoomTrainSet(samples, 2, seed=4, augment=False)[3]["lr"] * 255
    assert (plain[0, 1:] - plain[0, :-1] == 1).all()  # no flip: rows grow downwards


def test_wrong_ratio_or_tiny_samples_refused():
    with pytest.raises(DataError, match="ratio"):
        ZoomTrainSet([coded_sample(60, 60, 2)], 4)
    with pytest.raises(DataError, match="at least 48"):
        ZoomTrainSet([coded_sample(40, 60, 2)], 2)
    with pytest.raises(DataError, match="View2x"):
        TripleZoomTrainSet([coded_sample(60, 60, 4)], (2, 4))


def test_simulated_folders_train_and_test(shared, tmp_path):
    photo = read_image(shared("data", "photos", "roof_tiles.jpg")).color[:, 200:520, 300:620]
    for name, refs in (("dual", ()), ("triple", (2, 4))):
        s = simulate_capture(photo, 4, refs, seed=0)
        write_zoom_sample(
            tmp_path / name / "s0", {k: v for k, v in s.items() if k != "meta"}, s["meta"]
        )
    (dual,), (triple,) = (
        load_zoom_samples(tmp_path / "dual"),
        load_zoom_samples(tmp_path / "triple"),
    )
    assert dual.lr.dtype == torch.uint8 and dual.refs == (4,) and triple.refs == (2, 4)
    it = ZoomTrainSet([dual], 4)[0]
    assert it["lr"].shape == (3, 48, 48) and it["gt"].shape == (3, 192, 192)
    # A real (simulated) patch pair: the GT downscaled matches its LR better than any flip of it.
    down = imresize(it["gt"], 0.25)
    err = [
        ((down - f(it["lr"])) ** 2).mean()
        for f in (lambda x: x, lambda x: x.flip(-1), lambda x: x.mT)
    ]
    assert err[0] < min(err[1:])
    t = TripleZoomTrainSet([triple], (2, 4))[1]
    assert t["ref2x"].shape == (3, 48, 48)
    # The test input: LR of 80 x 80 is a multiple of 8 already, so nothing is padded ...
    ts = load_zoom_sample(tmp_path / "triple" / "s0")
    assert ts.crop == (0, 80, 0, 80) and [r.shape[-2:] for r in ts.refs] == [(80, 80)] * 2
    assert ts.ref_boxes == [(20, 60, 20, 60), (30, 50, 30, 50)]
    ref4x = read_image(tmp_path / "triple" / "s0" / "Ref4x.png").color
    assert torch.equal(ts.refs[1][0], ref4x)  # ... and the Refs are the files'
    # ... while the official img_pad always adds 1..8 rows and columns.
    off = load_zoom_sample(tmp_path / "triple" / "s0", official_pad=True)
    assert off.lr.shape[-2:] == (88, 88) and off.crop == (4, 84, 4, 84)
    assert torch.equal(off.unpad(off.gt), ts.gt)
    # The same captures as (LR, GT) pairs for a single-image baseline, at their ratio only.
    ((lr, gt),) = load_zoom_pairs([tmp_path / "triple"], 4)
    assert torch.equal(lr, triple.lr) and torch.equal(gt, triple.gt)
    with pytest.raises(DataError, match="x4 zoom sample, not x2"):
        load_zoom_pairs([tmp_path / "triple"], 2)


def test_test_sample_padding_and_unpad():
    s = coded_sample(45, 37, 2)
    ts = load_zoom_sample(s, pad=8)
    assert ts.lr.shape == (1, 3, 48, 40) and ts.gt.shape == (1, 3, 96, 80)
    assert pad_amounts(45, 8) == (1, 2) and pad_amounts(37, 8) == (1, 2)
    assert ts.crop == (1, 46, 1, 38)
    assert torch.equal(ts.unpad(ts.gt)[0] * 255, s.gt.float())
    assert torch.equal(ts.unpad(ts.lr, 1)[0] * 255, s.lr.float())
    assert torch.equal(ts.lr[..., 0, :], ts.lr[..., 1, :])  # edge (replicate) padding
    (ref,), (box,) = ts.refs, ts.ref_boxes
    assert ref.shape[-2:] == (48, 40) and box == (12, 36, 10, 30)
    assert torch.equal(ref, _cut(ts.gt, 2, box)) and torch.equal(ts.lr_refs[0], _cut(ts.lr, 1, box))
