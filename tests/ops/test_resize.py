import numpy as np
import pytest
import torch
from PIL import Image

from zoomsr.ops.resize import contributions, imresize, imresize_uint8, modcrop, output_size

SETS = ("Set5", "Set14")


def _benchmark_files(shared, dataset, scale):
    root = shared("data", dataset)
    for hr in sorted((root / "HR").glob("*.png")):
        yield hr, root / "LR_bicubic" / f"X{scale}" / f"{hr.stem}x{scale}.png"


@pytest.mark.parametrize("dataset", SETS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_uint8_resize_is_bit_exact_to_matlab(shared, dataset, scale):
    differing = 0
    for hr_path, lr_path in _benchmark_files(shared, dataset, scale):
        hr = np.array(Image.open(hr_path))
        lr = np.array(Image.open(lr_path))
        out = imresize_uint8(modcrop(hr, scale), 1 / scale)
        assert out.shape == lr.shape, hr_path.name
        differing += int((out != lr).sum())
    assert differing == 0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_float_path_with_levels_matches_uint8_path(shared, scale):
    for hr_path, lr_path in _benchmark_files(shared, "Set5", scale):
        hr = torch.from_numpy(np.array(Image.open(hr_path))).permute(2, 0, 1).float() / 255
        out = imresize(modcrop(hr, scale), 1 / scale, levels=255)
        lr = torch.from_numpy(np.array(Image.open(lr_path))).permute(2, 0, 1).float()
        assert torch.equal(torch.round(out * 255), lr), hr_path.name


def test_rounding_between_passes_matters(shared):
    # Rounding once at the end (the float path) must differ from MATLAB's uint8 result.
    hr_path, lr_path = next(_benchmark_files(shared, "Set14", 3))
    hr = np.array(Image.open(hr_path))
    lr = np.array(Image.open(lr_path))
    x = torch.from_numpy(modcrop(hr, 3)).double().permute(2, 0, 1) / 255
    once = torch.round(imresize(x, 1 / 3).clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    assert (once != lr).mean() > 0.01


def test_output_sizes_follow_matlab_ceil():
    assert output_size(5, 7, 1.5, None)[0] == (8, 11)
    assert output_size(9, 12, 1 / 3, None)[0] == (3, 4)
    assert output_size(10, 10, None, (4, 6)) == ((4, 6), (0.4, 0.6))
    x = torch.rand(1, 3, 5, 7)
    assert imresize(x, 1.5).shape == (1, 3, 8, 11)


def test_weights_sum_to_one_and_indices_in_range():
    for n_in, n_out in [(10, 20), (20, 10), (17, 5), (1, 4)]:
        idx, w = contributions(n_in, n_out, n_out / n_in, True)
        assert idx.min() >= 0 and idx.max() < n_in
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


def test_constant_image_stays_constant_and_float_path_is_differentiable():
    x = torch.full((2, 3, 9, 13), 0.37, requires_grad=True)
    for scale in (0.25, 1 / 3, 2, 3.5):
        y = imresize(x, scale)
        assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-6)
    imresize(x, 2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_upscale_interpolates_matlab_bicubic_samples():
    # imresize([0 0 1 1], [1 8]) worked by hand: sample 4 sits at u = 2.25, weights
    # cubic(0.75) = 0.2265625 and cubic(1.75) = -0.0234375 on the two ones.
    x = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    y = imresize(x, size=(1, 8))
    expected = torch.tensor(
        [0.0, -0.0234375, -0.0703125, 0.203125, 0.796875, 1.0703125, 1.0234375, 1.0]
    )
    assert torch.allclose(y[0], expected, atol=1e-7)


def test_uint8_rejects_other_dtypes():
    with pytest.raises(TypeError):
        imresize_uint8(np.zeros((4, 4), np.float32), 2)
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 2)
