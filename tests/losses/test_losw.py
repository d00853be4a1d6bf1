"""Local overlapped sliced Wasserstein (LOSW) loss of SelfDZSR++ (reference §4.4-4.5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoomsr.errors import ZoomsrError
from zoomsr.losses.expr import CompositeLoss, parse_loss
from zoomsr.losses.sliced_wasserstein import (
    LocalSlicedWassersteinLoss,
    local_sliced_wasserstein,
    losw_window,
    random_projections,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def slow_losw(x, y, projections, k, stride=2):
    """Plain loop: per window, project every pixel, sort each projection, L1; mean of all."""
    n, c, h, w = x.shape
    diffs = []
    for top in range(0, h - k + 1, stride):
        for left in range(0, w - k + 1, stride):
            a = x[:, :, top : top + k, left : left + k].reshape(n, c, k * k)
            b = y[:, :, top : top + k, left : left + k].reshape(n, c, k * k)
            for i in range(n):
                pa = (projections @ a[i]).sort(dim=1).values
                pb = (projections @ b[i]).sort(dim=1).values
                diffs.append((pa - pb).abs().flatten())
    return torch.cat(diffs).mean()  # every window has K x k² values: one global mean


class FakeExtractor(torch.nn.Module):
    """VGG-shaped taps (strides 4, 8, 16) from a fixed random conv, so no weights are needed."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        torch.nn.init.normal_(self.conv.weight, generator=_gen(7))
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        f = self.conv(x)
        return {f"relu{i}_2": F.avg_pool2d(f, 2 ** (i - 1)) for i in (3, 4, 5)}


@pytest.mark.parametrize(
    ("shape", "k"), [((2, 6, 11, 9), 4), ((1, 8, 12, 12), 2), ((2, 4, 5, 7), 1)]
)
def test_losw_equals_the_window_loop(shape, k):
    x = torch.randn(*shape, generator=_gen(1))
    y = torch.randn(*shape, generator=_gen(2)) * 1.5 + 0.3
    proj = random_projections(shape[1] // 2, shape[1], _gen(3))
    fast = local_sliced_wasserstein(x, y, k, projections=proj)
    assert fast.item() == pytest.approx(slow_losw(x, y, proj, k).item(), abs=1e-5)


def test_losw_draws_the_same_projections_as_given_ones():
    x, y = torch.randn(2, 6, 8, 8, generator=_gen(1)), torch.randn(2, 6, 8, 8, generator=_gen(2))
    drawn = local_sliced_wasserstein(x, y, 4, generator=_gen(5))
    proj = random_projections(3, 6, _gen(5))
    assert drawn.item() == pytest.approx(slow_losw(x, y, proj, 4).item(), abs=1e-5)


def test_losw_zero_for_identical_positive_for_different_and_local():
    x = torch.randn(2, 8, 10, 10, generator=_gen(1))
    assert local_sliced_wasserstein(x, x, 4, generator=_gen()).item() == 0.0
    y = x + 0.3 * torch.randn(2, 8, 10, 10, generator=_gen(2))
    assert local_sliced_wasserstein(x, y, 4, generator=_gen()).item() > 0
    # A global permutation of pixels keeps global SW at 0 but moves pixels between windows.
    perm = torch.randperm(100, generator=_gen(3))
    shuffled = x.flatten(2)[:, :, perm].view_as(x)
    assert local_sliced_wasserstein(shuffled, x, 4, generator=_gen()).item() > 0.1
    # Within one window (window = whole map) a permutation is invisible.
    assert local_sliced_wasserstein(shuffled, x, 10, generator=_gen()).item() < 1e-6


def test_losw_has_gradients():
    x = torch.randn(1, 8, 6, 6, generator=_gen(1), requires_grad=True)
    y = torch.randn(1, 8, 6, 6, generator=_gen(2))
    local_sliced_wasserstein(x, y, 2, generator=_gen()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_window_size_from_patch_height():
    assert [losw_window(192, f"relu{i}_2") for i in (3, 4, 5)] == [8, 4, 2]
    assert [losw_window(96, f"relu{i}_2") for i in (3, 4, 5)] == [4, 2, 1]
    assert losw_window(200, "relu3_2") == 8  # floors like H//4//6
    with pytest.raises(ValueError, match="reluI_J"):
        losw_window(192, "conv3_2")
    with pytest.raises(ValueError, match="does not fit"):
        local_sliced_wasserstein(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), 4)


def test_losw_module_follows_the_patch_and_layer_weights():
    loss = LocalSlicedWassersteinLoss(scale=0.08, extractor=FakeExtractor(), seed=4)
    sr = torch.rand(2, 3, 96, 96, generator=_gen(1))
    hr = torch.rand(2, 3, 96, 96, generator=_gen(2))
    with torch.no_grad():
        fs, ft = loss.extractor(sr), loss.extractor(hr)
    stream = _gen(4)  # the module draws one projection set per layer, in layer order
    expected = 0.0
    for layer, w, k in zip(("relu3_2", "relu4_2", "relu5_2"), (1, 1, 2), (4, 2, 1), strict=True):
        proj = random_projections(4, 8, stream)
        expected += w * slow_losw(fs[layer], ft[layer], proj, k).item()
    assert loss(sr, hr).item() == pytest.approx(0.08 * expected, rel=1e-5)
    with pytest.raises(ZoomsrError, match="at least 96 px"):
        loss(sr[:, :, :80], hr[:, :, :80])
    fixed = LocalSlicedWassersteinLoss(extractor=FakeExtractor(), windows=(2, 2, 1))
    assert fixed(sr[:, :, :80], hr[:, :, :80]).item() > 0


def test_mask_multiplies_both_images_before_the_features():
    def losw():
        return LocalSlicedWassersteinLoss(extractor=FakeExtractor(), seed=1)

    sr, hr = (
        torch.rand(1, 3, 96, 96, generator=_gen(1)),
        torch.rand(1, 3, 96, 96, generator=_gen(2)),
    )
    mask = torch.zeros(1, 1, 96, 96)
    assert losw()(sr, hr, mask=mask).item() == 0.0  # everything masked out
    mask[..., :48, :] = 0.5
    masked = losw()(sr, hr, mask=mask).item()
    assert masked == losw()(sr * mask, hr * mask).item()
    assert 0 < masked < losw()(sr, hr).item()


def test_losw_expression_term_parses_and_logs():
    assert parse_loss("1*L1+0.08*LOSW") == [(1.0, "L1"), (0.08, "LOSW")]
    loss = CompositeLoss("1*L1+0.08*LOSW")
    assert isinstance(loss.terms[1], LocalSlicedWassersteinLoss)
    assert len(loss.generators()) == 1  # its projection stream is saved for resumption
    hr = torch.rand(1, 3, 96, 96, generator=_gen(1))
    sr = (hr + 0.1 * torch.randn(1, 3, 96, 96, generator=_gen(2))).clamp(0, 1)
    total, terms = loss(sr, hr, None)
    assert set(terms) == {"L1", "LOSW"} and terms["LOSW"] > 0
    assert total.item() == pytest.approx(terms["L1"] + terms["LOSW"], rel=1e-6)
    assert loss(hr, hr, None)[1]["LOSW"] == 0.0
    mask = torch.ones(1, 1, 96, 96)
    mask[..., 48:] = 0
    _, masked = loss(sr, hr, None, mask=mask)
    assert masked["L1"] == pytest.approx(terms["L1"] / 2, rel=0.1)
    with pytest.raises(ZoomsrError, match="LOSW"):
        CompositeLoss("1*L1+0.08*LOSWX")
