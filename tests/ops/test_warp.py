"""Flow warping, DIS flow and the online patch alignment of SelfDZSR++ training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoomsr.data.zoom import align_patch
from zoomsr.io import read_image
from zoomsr.ops.flow import dis_flow
from zoomsr.ops.resize import imresize
from zoomsr.ops.warp import flow_warp


@pytest.fixture(scope="module")
def gt(shared) -> torch.Tensor:
    """A 384 x 384 textured crop (GT of a 96 x 96 LR at x4)."""
    return read_image(shared("data", "photos", "roof_tiles.jpg")).color[:, 300:684, 400:784].clone()


def _masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    mse = (((a - b) ** 2) * mask).sum() / (mask.sum() * a.shape[-3])
    return float(10 * torch.log10(1 / mse))


def test_zero_and_integer_flows():
    x = torch.rand(2, 3, 10, 12)
    warped, mask = flow_warp(x, torch.zeros(2, 2, 10, 12))
    assert torch.allclose(warped, x, atol=1e-6) and mask.shape == (2, 1, 10, 12) and mask.all()
    flow = torch.zeros(2, 10, 12)
    flow[0] = 2  # sample two pixels to the right
    flow[1] = -1  # and one up
    warped, mask = flow_warp(x[0], flow)
    assert torch.allclose(warped[:, 1:, :-2], x[0, :, :-1, 2:], atol=1e-6)
    assert mask[0, 1:, :-2].all() and not mask[0, 0].any() and not mask[0, :, -2:].any()
    half, _ = flow_warp(x[0], torch.stack([torch.full((10, 12), 0.5), torch.zeros(10, 12)]))
    assert torch.allclose(half[:, :, :-1], (x[0, :, :, :-1] + x[0, :, :, 1:]) / 2, atol=1e-6)


def test_dis_flow_finds_a_known_shift(gt):
    img = imresize(gt, 0.25)
    moved, _ = flow_warp(img, torch.stack([torch.full((96, 96), 1.5), torch.full((96, 96), -0.75)]))
    flow = dis_flow(img, moved)  # brings `moved` back onto `img`: about (-1.5, +0.75)
    inner = flow[:, 10:-10, 10:-10].mean(dim=(1, 2))
    assert flow.shape == (2, 96, 96)
    assert torch.allclose(inner, torch.tensor([-1.5, 0.75]), atol=0.25), inner


def test_align_patch_improves_masked_psnr(gt):
    lr = imresize(gt, 0.25).clamp(0, 1)  # (3, 96, 96), aligned with the GT
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    smooth = torch.stack(
        [1.3 * torch.sin(2 * math.pi * yy / 96), 0.9 * torch.cos(2 * math.pi * xx / 96) + 0.4]
    )
    moved, _ = flow_warp(lr, smooth)  # the misaligned LR a real wide camera would give
    batch_lr, batch_gt = torch.stack([moved, lr]), torch.stack([gt, gt])
    warped, lr_mask, gt_mask = align_patch(batch_lr, batch_gt, 4)
    assert warped.shape == (2, 3, 96, 96) and lr_mask.shape == (2, 1, 96, 96)
    assert gt_mask.shape == (2, 1, 384, 384) and gt_mask.min() >= 0 and gt_mask.max() <= 1
    down = F.interpolate(gt[None], size=(96, 96), mode="bilinear", antialias=True)[0]
    m = lr_mask[0]
    assert m.mean() > 0.8  # most of the patch stays usable
    before, after = _masked_psnr(moved, down, m), _masked_psnr(warped[0], down, m)
    assert after > before + 3, (before, after)
    # A single (C, H, W) patch works too and gives the same result as in the batch.
    one = align_patch(moved, gt, 4)
    assert torch.allclose(one[0], warped[0]) and one[1].shape == (1, 96, 96)
