"""Centroid (position-preserving) and sliced Wasserstein losses of SelfDZSR."""

from __future__ import annotations

import torch

from zoomsr.losses.centroid import CentroidLoss, centroid_penalty
from zoomsr.losses.sliced_wasserstein import sliced_wasserstein


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_centroid_zero_for_centred_symmetric_kernels():
    g = torch.exp(-(torch.arange(-3.0, 4.0) ** 2) / 4)
    gauss = (g[:, None] * g[None, :]).expand(2, 3, 7, 7)
    w = torch.rand(2, 3, 5, 5, generator=_gen())
    symmetric = w + w.flip(-1) + w.flip(-2) + w.flip(-1, -2)  # even in both axes
    assert centroid_penalty(gauss).item() < 1e-7  # float rounding only
    assert centroid_penalty(symmetric).abs().item() < 1e-7
    assert CentroidLoss()([gauss, symmetric]).abs().item() < 1e-5


def test_centroid_grows_with_the_shift():
    def delta(dy, dx):
        k = torch.zeros(1, 1, 7, 7)
        k[0, 0, 3 + dy, 3 + dx] = 1.0
        return k

    assert centroid_penalty(delta(0, 0)).item() == 0.0
    one, two = centroid_penalty(delta(0, 1)).item(), centroid_penalty(delta(0, 2)).item()
    assert 0 < one < two
    assert centroid_penalty(delta(1, 0)).item() == one  # same penalty vertically


def test_sw_zero_for_identical_and_spatial_permutation():
    x = torch.randn(2, 16, 6, 7, generator=_gen(1))
    assert sliced_wasserstein(x, x, generator=_gen()).item() == 0.0
    perm = torch.randperm(42, generator=_gen(2))
    shuffled = x.flatten(2)[:, :, perm].view_as(x)  # same permutation for every channel
    assert sliced_wasserstein(shuffled, x, generator=_gen()).item() < 1e-6


def test_sw_positive_and_seeded():
    x = torch.randn(2, 16, 6, 7, generator=_gen(1))
    y = x + 0.5 * torch.randn(2, 16, 6, 7, generator=_gen(3))
    a = sliced_wasserstein(x, y, generator=_gen(5))
    assert a.item() > 0
    assert a.item() == sliced_wasserstein(x, y, generator=_gen(5)).item()
    stream = _gen(5)
    first = sliced_wasserstein(x, y, generator=stream)
    second = sliced_wasserstein(x, y, generator=stream)  # projections redrawn per call
    assert first.item() == a.item() and second.item() != first.item()


def test_sw_has_gradients():
    x = torch.randn(1, 8, 5, 5, generator=_gen(1), requires_grad=True)
    y = torch.randn(1, 8, 5, 5, generator=_gen(2))
    sliced_wasserstein(x, y, generator=_gen()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
