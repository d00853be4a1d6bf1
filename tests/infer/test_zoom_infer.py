"""Whole-image, tiled and ECCV-chop inference of zoom models (zoomsr.infer.zoom)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from zoomsr.errors import ZoomsrError
from zoomsr.infer.zoom import ZoomOptions, run_zoom
from zoomsr.infer.zoom_runners import SelfDZSRRunner, receptive_margin
from zoomsr.models import load_model
from zoomsr.models.zoom import SelfDZSR
from zoomsr.models.zoom import matching as M

BOX = (15, 25, 21, 35)  # 10 x 14 LR px: the Ref is 40 x 56, the LR's size at x4


def _inputs(h=40, w=56, seed=1):
    g = torch.Generator().manual_seed(seed)
    # Smooth structure plus texture, so matching has something to find.
    base = F.interpolate(
        torch.rand(1, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bilinear"
    )
    lr = (0.7 * base + 0.3 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)
    ref = torch.rand(1, 3, 4 * (BOX[1] - BOX[0]), 4 * (BOX[3] - BOX[2]), generator=g)
    return lr, ref


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SelfDZSR(scale=4, n_blocks=1).eval()


@pytest.fixture(scope="module")
def whole(model):
    lr, ref = _inputs()
    return run_zoom(model, lr, [ref], [BOX], ZoomOptions("whole"))


def test_whole_is_the_model_call(model, whole):
    lr, ref = _inputs()
    with torch.no_grad():
        direct = model(lr, [ref], [BOX]).clamp(0, 1)
    assert whole.shape == (1, 3, 160, 224)
    assert torch.equal(whole, direct)


def test_tiled_equals_whole_when_the_window_is_the_whole_ref(model, whole):
    lr, ref = _inputs()
    opts = ZoomOptions("tiled", tile=32, overlap=8, window=0, block=16)
    tiled = run_zoom(model, lr, [ref], [BOX], opts)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)
    # Restricted windows only change the search range: close, but not the same matches.
    windowed = run_zoom(model, lr, [ref], [BOX], ZoomOptions("tiled", tile=32, window=16))
    assert windowed.shape == whole.shape
    assert 0 < (windowed - whole).abs().max() < 0.5


def test_each_tile_pastes_its_part_of_the_ref_box(model, monkeypatch):
    """The features entering the Ref AdaSTN (warped Ref with the Ref's own features pasted at
    the box) equal the whole image's at every pixel of every tile, tiles cutting the box."""
    lr, ref = _inputs()
    with torch.no_grad():
        expected = model.forward_trace(lr, ref, BOX)
    seen = []
    hook = model.ref_align.register_forward_pre_hook(lambda _m, a: seen.append(a[0].clone()))
    regions = []
    front = SelfDZSRRunner._front

    def spy(self, region):
        regions.append(region)
        return front(self, region)

    monkeypatch.setattr(SelfDZSRRunner, "_front", spy)
    try:
        # the pasted features are exact at every pixel, whatever the margin
        opts = ZoomOptions("tiled", tile=16, overlap=4, margin=4, window=0)
        run_zoom(model, lr, [ref], [BOX], opts)
    finally:
        hook.remove()
    pasted = expected["ref_feat"]  # after ref_align; rebuild its input the way forward_trace does
    with torch.no_grad():
        full_in = M.paste(expected["ref_warped"], expected["ref_patch"], [BOX])
    assert len(regions) == len(seen) > 4 and pasted.shape[-2:] == lr.shape[-2:]
    cut = 0
    for (y0, y1, x0, x1), got in zip(regions, seen, strict=True):
        torch.testing.assert_close(got, full_in[..., y0:y1, x0:x1], atol=1e-5, rtol=0)
        inside = (max(y0, BOX[0]), min(y1, BOX[1]), max(x0, BOX[2]), min(x1, BOX[3]))
        cut += inside[0] < inside[1] and inside[2] < inside[3] and inside != BOX
    assert cut > 0  # some regions hold only part of the footprint


def test_any_lr_size_is_padded_and_cut_back(model):
    lr, ref = _inputs()
    lr = lr[..., :37, :53]  # 37 x 53: not a multiple of 4 or 8
    whole = run_zoom(model, lr, [ref], [BOX], ZoomOptions("whole"))
    tiled = run_zoom(model, lr, [ref], [BOX], ZoomOptions("tiled", tile=32, window=0))
    assert whole.shape == tiled.shape == (1, 3, 148, 212)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("scale", "size"), [(4, (40, 56)), (2, (40, 48))])
def test_eccv_chop_returns_the_output_size(scale, size):
    torch.manual_seed(0)
    model = SelfDZSR(scale=scale, n_blocks=1).eval()
    h, w = size
    box = (h // 2 - h // (2 * scale), h // 2 + h // (2 * scale), w // 2 - w // (2 * scale))
    box = (*box, box[2] + w // scale)
    g = torch.Generator().manual_seed(3)
    lr, ref = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
    out = run_zoom(model, lr, [ref], [box], ZoomOptions("eccv"))
    assert out.shape == (1, 3, scale * h, scale * w)
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0


def _peaks(model, lr, ref, box, opts, monkeypatch):
    """The largest LR-side tensor each stage handled, and the largest correlation."""
    peaks = {"trunk": 0, "student": 0, "correlation": 0}

    def note(key):
        def hook(_m, args):
            peaks[key] = max(peaks[key], args[0].shape[-2] * args[0].shape[-1])

        return hook

    hooks = [
        model.restoration.head.register_forward_pre_hook(note("trunk")),
        model.matcher.lr_branch.register_forward_pre_hook(note("student")),
        model.matcher.ref_branch.register_forward_pre_hook(note("student")),
    ]
    match = M.match_patches

    def counted(f_in, f_ref, max_elements=1 << 24):
        patches = (f_in.shape[-2] - 2) * (f_in.shape[-1] - 2) * (f_ref.shape[-2] - 2)
        peaks["correlation"] = max(peaks["correlation"], patches * (f_ref.shape[-1] - 2))
        return match(f_in, f_ref, max_elements)

    monkeypatch.setattr(M, "match_patches", counted)
    try:
        run_zoom(model, lr, [ref], [box], opts)
    finally:
        for h in hooks:
            h.remove()
    return peaks


def _capture(h, w):
    """An LR and the x4 Ref of its centre quarter (the Ref has the LR's size)."""
    lr, _ = _inputs(h, w)
    box = (3 * h // 8, 3 * h // 8 + h // 4, 3 * w // 8, 3 * w // 8 + w // 4)
    ref = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(2))
    return lr, ref, box


def test_tiled_memory_and_matching_are_bounded_by_the_options(monkeypatch):
    torch.manual_seed(0)
    model = SelfDZSR(scale=4, n_blocks=1, n_feats=16).eval()  # narrow: the sizes are the point
    opts = ZoomOptions("tiled", tile=32, overlap=8, margin=4, window=24, block=16)
    h, w = 88, 120  # multiples of 8: no padding
    peaks = _peaks(model, *_capture(h, w), opts, monkeypatch)
    # Restore tiles are 32 + 2 x 4 px; modulation strips of 2 final pixels read 49 Ref-grid
    # rows, +1 for the resize and 2 x 16 of trunk context: at most 82 x 82, whatever the image.
    assert peaks["trunk"] <= 82 * 82 < h * w
    # Student windows: one Ref tile or one LR block with the VGG's reach, never the image.
    assert peaks["student"] <= (32 + 2 * M.VGG_REACH + 4) ** 2 < h * w
    # Each block of 4 x 4 LR patches searches a 6 x 6-feature window: linear in the area.
    assert peaks["correlation"] <= (16 // 4) ** 2 * (24 // 4) ** 2
    assert peaks["correlation"] * 100 < (h // 4 - 2) ** 2 * (w // 4 - 2) ** 2


@pytest.mark.parametrize(("name", "zooms"), [("selfdzsr-pp", (4,)), ("selftzsr-pp", (2, 4))])
def test_plus_plus_models_tile_too(name, zooms):
    torch.manual_seed(0)
    model = load_model(name, 4, n_blocks=2, n_feats=16)
    g = torch.Generator().manual_seed(1)
    h, w = 48, 64
    lr, refs, boxes = torch.rand(1, 3, h, w, generator=g), [], []
    for z in zooms:  # each Ref: the x z view of the LR's central 1/z, at the LR's size
        t, left = (h - h // z) // 2, (w - w // z) // 2
        boxes.append((t, t + h // z, left, left + w // z))
        refs.append(torch.rand(1, 3, h, w, generator=g))
    whole = run_zoom(model, lr, refs, boxes)
    with torch.no_grad():
        assert torch.equal(whole, model(lr, refs, boxes).clamp(0, 1))
    tiled = run_zoom(model, lr, refs, boxes, ZoomOptions("tiled", tile=24, window=0))
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)
    with pytest.raises(ZoomsrError, match="ECCV chop is for SelfDZSR"):
        run_zoom(model, lr, refs, boxes, ZoomOptions("eccv"))


def test_default_margin_is_the_receptive_field(model):
    assert receptive_margin(model) == 2 * 1 + 4 + 16
    assert receptive_margin(SelfDZSR(scale=4, n_blocks=4)) == 2 * 4 + 20


def test_models_without_a_runner_take_the_whole_method_only():
    class Echo(torch.nn.Module):
        scale = 2

        def forward(self, lr, refs, boxes):
            return F.interpolate(lr, scale_factor=2, mode="nearest")

    lr, ref = torch.rand(1, 3, 13, 18), torch.rand(1, 3, 8, 8)
    out = run_zoom(Echo(), lr, [ref], [(3, 7, 5, 9)])
    assert torch.equal(out, F.interpolate(lr, scale_factor=2, mode="nearest"))
    with pytest.raises(ZoomsrError, match="not available"):
        run_zoom(Echo(), lr, [ref], [(3, 7, 5, 9)], ZoomOptions("tiled"))
    with pytest.raises(ZoomsrError, match="unknown zoom method"):
        run_zoom(Echo(), lr, [ref], [(3, 7, 5, 9)], ZoomOptions("best"))
    with pytest.raises(ZoomsrError, match="outside"):
        run_zoom(Echo(), lr, [ref], [(3, 70, 5, 9)])


def test_ref_must_show_its_box_at_the_scale(model):
    lr, ref = _inputs()
    with pytest.raises(ZoomsrError, match="must show its box"):
        run_zoom(model, lr, [ref[..., :-4, :]], [BOX], ZoomOptions("tiled"))


# --------------------------------------------------------------------------- window helpers


def test_resize_window_is_a_crop_of_the_whole_resize():
    x = torch.randn(1, 5, 13, 17, generator=torch.Generator().manual_seed(0))
    up = F.interpolate(x, size=(52, 68), mode="bilinear", align_corners=True)
    got = M.ac_resize_window(x[..., 2:, 3:], (2, 3), (13, 17), (52, 68), (10, 30), (14, 50))
    torch.testing.assert_close(got, up[..., 10:30, 14:50], atol=1e-6, rtol=0)
    a, b = M.ac_source_range(13, 52, 10, 30)
    assert a >= 2 and b <= 13


def test_student_window_is_a_crop_of_the_whole_features():
    torch.manual_seed(0)
    extractor = SelfDZSR(scale=4, n_blocks=1).matcher.eval()
    image = torch.rand(1, 3, 44, 60, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, full = extractor(image, image)
        got = M.student_window(extractor, image, "ref", (3, 8), (2, 13))
    torch.testing.assert_close(got, full[..., 3:8, 2:13], atol=1e-5, rtol=0)


def test_deform_window_is_torchvisions_deform_conv():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 8, 30, 40, generator=g)
    off = torch.randn(1, 18, 30, 40, generator=g) * 6  # some samples leave the map
    weight, bias = torch.randn(8, 1, 3, 3, generator=g), torch.randn(8, generator=g)
    full = deform_conv2d(feat, off, weight, bias, padding=1)
    got = M.deform_window(feat, off[..., 5:20, 7:33], (5, 7), weight, bias)
    torch.testing.assert_close(got, full[..., 5:20, 7:33], atol=1e-5, rtol=0)
    # a non-contiguous map takes the other path (only the reached part is read and copied)
    strided = feat.contiguous(memory_format=torch.channels_last)
    assert not strided.is_contiguous()
    got = M.deform_window(strided, off[..., 5:20, 7:33], (5, 7), weight, bias)
    torch.testing.assert_close(got, full[..., 5:20, 7:33], atol=1e-5, rtol=0)


def test_match_flow_of_whole_maps_gives_the_parity_offsets():
    g = torch.Generator().manual_seed(0)
    f_lr, f_ref = torch.randn(16, 9, 11, generator=g), torch.randn(16, 9, 11, generator=g)
    flow = M.match_flow(f_lr, f_ref, (0, 0), (0, 0))
    expected = M.correspondence_offsets(f_lr[None], f_ref[None])[0]
    assert torch.equal(M.flow_to_offsets(flow, 9, 11), expected)
    # a window of the LR map searched in a window of the Ref: global coordinates
    part = M.match_flow(f_lr[:, 2:7, 3:9], f_ref[:, 1:8, :], (2, 3), (1, 0))
    index = M.match_patches(f_lr[:, 2:7, 3:9], f_ref[:, 1:8, :])
    assert torch.equal(part[0], index // 9 + 1 - torch.arange(2, 5)[:, None])


def test_patch_select_finds_the_window_with_the_tiles_colours():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 96, 128, generator=g) * 0.3
    ref[..., 40:72, 64:96] = 0.7 + 0.3 * torch.rand(1, 3, 32, 32, generator=g)
    tile = 0.7 + 0.3 * torch.rand(1, 3, 32, 32, generator=g)
    top, left = M.PatchSelector(ref, (32, 32))(tile)
    assert (top, left) == (40, 64)


def test_auto_is_whole_for_small_inputs_and_tiled_for_large(model, whole, monkeypatch):
    import zoomsr.infer.zoom as Z

    lr, ref = _inputs()
    assert torch.equal(run_zoom(model, lr, [ref], [BOX]), whole)  # 40 x 56: one pass
    chosen = []
    monkeypatch.setattr(Z, "AUTO_WHOLE_PIXELS", 40 * 56 - 1)
    monkeypatch.setattr(SelfDZSRRunner, "tiled", lambda self, *a: chosen.append(a) or whole)
    run_zoom(model, lr, [ref], [BOX])
    assert len(chosen) == 1
