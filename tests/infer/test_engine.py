import itertools

import torch

from zoomsr.infer.engine import InferOptions, auto_tile, parse_memory, run_sisr
from zoomsr.infer.ensemble import self_ensemble
from zoomsr.models import load_model
from zoomsr.ops.tiles import blend_window, plan_tiles


def test_tiles_cover_the_image_with_the_overlap():
    tiles = plan_tiles(100, 130, 48, 16)
    cover = torch.zeros(100, 130)
    for t in tiles:
        cover[t.top : t.top + t.height, t.left : t.left + t.width] += 1
    assert cover.min() >= 1
    starts = sorted({t.left for t in tiles})
    assert all(b - a <= 48 - 16 for a, b in itertools.pairwise(starts))


def test_windows_sum_to_a_positive_weight_everywhere():
    h, w, s = 70, 90, 2
    total = torch.zeros(1, 1, h * s, w * s)
    for t in plan_tiles(h, w, 40, 10):
        win = blend_window(t, h, w, 10, s)
        total[..., t.top * s : (t.top + t.height) * s, t.left * s : (t.left + t.width) * s] += win
    assert total.min() > 0.05


def test_tiled_output_matches_whole_image():
    torch.manual_seed(0)
    model = load_model("edsr-baseline", 2, n_resblocks=4, n_feats=32)
    x = torch.rand(1, 3, 100, 120)
    whole = run_sisr(model, x, opts=InferOptions(tile=0))
    tiled = run_sisr(model, x, opts=InferOptions(tile=48, overlap=16))
    assert tiled.shape == whole.shape == (1, 3, 200, 240)
    assert (tiled - whole).abs().max() <= 1 / 255


def test_self_ensemble_of_an_equivariant_model_is_the_model():
    bicubic = load_model("bicubic", 2)
    x = torch.rand(1, 3, 16, 20)
    assert torch.allclose(self_ensemble(bicubic, x), bicubic(x), atol=1e-6)


def test_gray_input_to_rgb_model_comes_back_gray():
    model = load_model("edsr-baseline", 2, n_resblocks=1, n_feats=8)
    y = run_sisr(model, torch.rand(1, 1, 12, 12))
    assert y.shape == (1, 1, 24, 24) and y.min() >= 0 and y.max() <= 1


def test_memory_budget_sets_tile_size():
    model = load_model("edsr-baseline", 4, n_resblocks=2, n_feats=32)
    small, large = auto_tile(model, 64 << 20, False), auto_tile(model, 4 << 30, False)
    assert 64 <= small < large
    assert parse_memory("4GB") == 4 << 30 and parse_memory("512MB") == 512 << 20
