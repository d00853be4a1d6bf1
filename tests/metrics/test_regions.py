import math

import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.metrics import MetricSuite, get_convention, region_boxes
from zoomsr.metrics.regions import centre_box, corner_boxes


@pytest.mark.parametrize(("h", "w", "s"), [(100, 150, 4), (97, 131, 2), (64, 64, 4), (90, 130, 3)])
def test_corner_strips_tile_the_complement_of_the_centre(h, w, s):
    mask = torch.zeros(h, w, dtype=torch.int32)
    c = centre_box(h, w, s)
    assert (c.height, c.width) == (h // s, w // s)
    assert c.top == (h - h // s) // 2 and c.left == (w - w // s) // 2
    c_mask = torch.zeros_like(mask)
    c.crop(c_mask)[...] = 1
    for box in corner_boxes(h, w, s):
        box.crop(mask)[...] += 1
    assert torch.equal(mask + c_mask, torch.ones_like(mask))


def test_corner_psnr_is_area_weighted_and_ignores_the_centre():
    conv = get_convention("selfdzsr")
    g = torch.Generator().manual_seed(0)
    target = torch.round(torch.rand(1, 3, 96, 128, generator=g) * 255) / 255
    output = target.clone()
    centre_box(96, 128, 4).crop(output)[...] = 0  # damage only the centre
    suite = MetricSuite(conv, ("psnr", "ssim"), ("full", "centre", "corner"))
    row = suite(output, target, scale=4)
    assert math.isinf(row["psnr_corner"]) and row["ssim_corner"] == pytest.approx(1.0)
    assert row["psnr_centre"] < row["psnr"] < 100
    # Corner PSNR = PSNR of the total squared error over all corner pixels.
    output2 = target.clone()
    strips = corner_boxes(96, 128, 4)
    strips[0].crop(output2)[...] = (strips[0].crop(output2) + 0.1).clamp(0, 1)
    row2 = suite(output2, target, scale=4)
    q = (torch.round(output2 * 255) - target * 255) ** 2
    mask = torch.ones(96, 128, dtype=torch.bool)
    centre_box(96, 128, 4).crop(mask)[...] = False
    expected = 10 * math.log10(255**2 / q[..., mask].mean().item())
    assert row2["psnr_corner"] == pytest.approx(expected, abs=1e-6)


def test_region_names_are_checked():
    with pytest.raises(ZoomsrError, match="unknown region"):
        region_boxes("middle", 10, 10, 2)
    with pytest.raises(ZoomsrError, match="centre fraction"):
        region_boxes("centre", 10, 10, 1)
