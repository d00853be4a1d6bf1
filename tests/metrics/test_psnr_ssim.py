import math

import pytest
import torch
from skimage.metrics import structural_similarity

from zoomsr.metrics import CONVENTIONS, MetricSuite, get_convention, psnr, ssim
from zoomsr.ops.color import rgb_to_y


def _images(seed=0, size=(3, 40, 48)):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, *size, generator=g)
    b = (a + 0.1 * torch.randn(1, *size, generator=g)).clamp(0, 1)
    return a, b


def test_psnr_known_mse_and_identity():
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full_like(a, 1 / 255)  # MSE = 1 on the 0..255 scale
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(255**2))
    assert math.isinf(psnr(a, a).item())


def test_psnr_shave_and_y():
    a, b = _images()
    b[..., :2, :] = 1 - a[..., :2, :]  # damage only the top two rows
    assert psnr(a, b, shave=2) > psnr(a, b) + 3
    y_a, y_b = rgb_to_y(a.double()), rgb_to_y(b.double())
    manual = 10 * torch.log10(255**2 / ((y_a - y_b) ** 2).mean())
    assert psnr(a, b, y_only=True).item() == pytest.approx(manual.item(), abs=1e-9)


def test_y_of_gray_is_gray_level_and_of_white_is_235():
    assert rgb_to_y(torch.ones(1, 3, 1, 1)).item() == pytest.approx(235.0)
    assert rgb_to_y(torch.full((1, 1, 1, 1), 0.5)).item() == pytest.approx(127.5)


@pytest.mark.parametrize("sample_cov", [True, False])
def test_ssim_equals_scikit_image(sample_cov):
    a, b = _images(1)
    ours = ssim(a, b, sample_covariance=sample_cov).item()
    ref = structural_similarity(
        (a[0].permute(1, 2, 0).double() * 255).numpy(),
        (b[0].permute(1, 2, 0).double() * 255).numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=sample_cov,
        data_range=255,
        channel_axis=-1,
    )
    assert ours == pytest.approx(ref, abs=1e-10)


def test_ssim_identity_and_decreases_with_noise():
    a, b = _images(2)
    assert ssim(a, a).item() == pytest.approx(1.0)
    c = (a + 0.3 * (b - a)).clamp(0, 1)
    assert ssim(a, b) < ssim(a, c) < 1


def test_conventions_and_overrides():
    sisr = get_convention("sisr")
    assert sisr.y_only and sisr.shave_for(3) == 3 and not sisr.ssim_sample_covariance
    dz = CONVENTIONS["selfdzsr"]
    assert not dz.y_only and dz.shave_for(4) == 0 and dz.ssim_sample_covariance
    custom = sisr.with_overrides(y_only=False)
    assert custom.name != "sisr" and "rgb" in custom.name
    assert sisr.with_overrides(y_only=True) is sisr
    assert "shave 4" in sisr.describe(4)


def test_suite_quantizes_like_a_saved_png():
    a, _ = _images(3)
    target = torch.round(a * 255) / 255
    nearly = (target + 0.4 / 255).clamp(0, 1)  # rounds back onto the target
    row = MetricSuite(get_convention("sisr"), ("psnr", "ssim"))(nearly, target, scale=2)
    assert math.isinf(row["psnr"]) and row["ssim"] == pytest.approx(1.0)
