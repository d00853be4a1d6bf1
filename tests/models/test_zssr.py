import math

import numpy as np
import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.metrics.psnr import psnr
from zoomsr.models.registry import get_spec, load_model
from zoomsr.models.zeroshot.kernels import (
    align_kernel,
    analytic_x4_kernel,
    bicubic_kernel,
    centre_of_mass,
    random_blindsr_kernel,
)
from zoomsr.models.zeroshot.zssr import (
    ZSSR,
    Downscaler,
    FatherSampler,
    ZSSRConfig,
    back_project,
    default_scale_steps,
    gradient_loss_map,
    resize,
)
from zoomsr.ops.degrade.kernels import anisotropic_gaussian_kernel, blur_downsample
from zoomsr.ops.resize import imresize


def synthetic(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Overlapping flat discs of random colours: sharp edges that bicubic blurs."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(n * 1.0), torch.arange(n * 1.0), indexing="ij")
    img = torch.full((3, n, n), 0.2)
    for _ in range(10):
        colour = torch.rand(3, generator=g)
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([n, n, n / 4])).tolist()
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (r + 3) ** 2
        img = torch.where(disc[None], colour[:, None, None], img)
    return img[None]


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_aligned_bicubic_kernel_downscales_like_imresize(scale):
    x = torch.rand(1, 3, 12 * scale, 10 * scale, dtype=torch.float64)
    k = torch.from_numpy(align_kernel(bicubic_kernel(scale), scale)).double()
    ours = blur_downsample(x, k, scale)
    ref = imresize(x, 1 / scale)
    assert ours.shape == ref.shape
    # Borders differ (mirroring conventions); the interior is the same operator.
    assert torch.allclose(ours[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-6)


def test_random_kernels_are_aligned_normalised_and_seeded():
    a, pa = random_blindsr_kernel(2, torch.Generator().manual_seed(3))
    b, _ = random_blindsr_kernel(2, torch.Generator().manual_seed(3))
    c, _ = random_blindsr_kernel(2, torch.Generator().manual_seed(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.sum() - 1) < 1e-5
    centre = (a.shape[0] - 1) / 2 + 0.5  # half a pixel off at x2 (MATLAB's grid)
    assert np.allclose(centre_of_mass(a), (centre, centre), atol=1e-3)
    assert 0.35 <= pa["lambda1"] <= 5 and 0.35 <= pa["lambda2"] <= 5


def test_analytic_x4_kernel_of_bicubic_x2_is_close_to_bicubic_x4():
    k4 = analytic_x4_kernel(align_kernel(bicubic_kernel(2), 2))
    ref = align_kernel(bicubic_kernel(4), 4)
    n = max(k4.shape[0], ref.shape[0])
    k4, ref = (np.pad(k, (n - k.shape[0]) // 2) for k in (k4, ref))
    corr = (k4 * ref).sum() / np.sqrt((k4 * k4).sum() * (ref * ref).sum())
    assert corr > 0.99 and abs(k4.sum() - 1) < 1e-5


# ---------------------------------------------------------------------------- resizing


def test_resize_with_scale_and_size_matches_imresize_and_keeps_fractional_scale():
    x = torch.rand(2, 3, 20, 16)
    assert torch.allclose(resize(x, 0.5, (10, 8)), imresize(x, 0.5), atol=1e-6)
    # x1.5 of 11 pixels to 16: the sample grid follows the scale, not 16/11.
    y = resize(torch.arange(11.0).view(1, 1, 1, 11).expand(1, 1, 4, 11), 1.5, (4, 16))
    assert torch.allclose(y[0, 0, 0, 3:9], (torch.arange(3, 9) + 0.5) / 1.5 - 0.5, atol=1e-4)


# ---------------------------------------------------------------------------- fathers


def _is_dihedral_crop(crop: torch.Tensor, image: torch.Tensor) -> bool:
    c = crop.shape[-1]
    for k in range(8):
        x = torch.rot90(image, k % 4, (-2, -1))
        x = x.flip(-1) if k >= 4 else x
        windows = x[0].unfold(1, c, 1).unfold(2, c, 1)  # (C, nh, nw, c, c)
        diff = (windows - crop[:, None, None]).abs().amax(dim=(0, 3, 4))
        if bool((diff < 1e-4).any()):
            return True
    return False


def test_exact_augmentations_are_pixel_copies_of_a_rotated_or_mirrored_crop():
    image = torch.rand(1, 3, 30, 37)
    cfg = ZSSRConfig(leave_as_is_probability=0.3, no_interpolate_probability=0.7)
    sampler = FatherSampler(cfg, 12, torch.Generator().manual_seed(0))
    sampler.add_source(image, 1.0)
    fathers = sampler.sample(12, 1.0)
    assert fathers.shape == (12, 3, 12, 12)
    assert all(_is_dihedral_crop(f, image) for f in fathers)


def test_affine_fathers_are_seeded_and_in_range():
    image = torch.rand(1, 3, 40, 40)

    def draw(seed):
        sampler = FatherSampler(ZSSRConfig(), 16, torch.Generator().manual_seed(seed))
        sampler.add_source(image, 1.0)
        return sampler.sample(8, 1.0)

    a, b, c = draw(1), draw(1), draw(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_gradient_loss_map_has_mean_one_a_zero_border_and_weights_edges():
    image = torch.zeros(1, 3, 20, 24)
    image[..., :, 12:] = 1.0  # one vertical edge between columns 11 and 12
    weights = gradient_loss_map(image)
    assert weights.shape == (1, 1, 20, 24)
    assert math.isclose(float(weights.mean()), 1.0, rel_tol=1e-6)
    assert float(weights[..., :3, :].abs().max()) == 0 and float(weights[..., :, -3:].max()) == 0
    assert float(weights[0, 0, 10, 11]) > 0 and float(weights[0, 0, 10, 4]) == 0


def test_plain_crops_carry_their_own_loss_weights():
    """Without augmentation every father is an exact crop, and its weight channel is the
    same crop of the source's loss map (KernelGAN's ZSSR)."""
    image = torch.rand(1, 3, 30, 37)
    cfg = ZSSRConfig(augment=False, loss_map=True, crop_sampling="uniform")
    sampler = FatherSampler(cfg, 12, torch.Generator().manual_seed(0))
    sampler.add_source(image, 1.0)
    fathers = sampler.sample(10, 1.0)
    assert fathers.shape == (10, 4, 12, 12)
    both = torch.cat([image, gradient_loss_map(image)], 1)
    windows = both[0].unfold(1, 12, 1).unfold(2, 12, 1)  # (4, nh, nw, 12, 12)
    for father in fathers:
        diff = (windows - father[:, None, None]).abs().amax(dim=(0, 3, 4))
        assert float(diff.min()) < 1e-4


# ------------------------------------------------------------------------------ ZSSR


def test_zssr_reduces_its_training_loss_and_beats_bicubic():
    hr = synthetic(64, seed=0)
    lr = imresize(hr, 0.5).clamp(0, 1)
    model = ZSSR(2, iterations=60, seed=0)
    sr = model(lr)
    losses = model.last_report.losses[0]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.95 * np.mean(losses[:10])
    bicubic = imresize(lr, 2).clamp(0, 1)
    assert float(psnr(sr, hr, shave=2)) > float(psnr(bicubic, hr, shave=2)) + 0.3


def test_back_projection_moves_the_downscaled_output_toward_the_input():
    lr = synthetic(32, seed=1)
    sr = (
        imresize(lr, 2)
        + 0.05 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ).clamp(0, 1)
    for kernel in (
        None,
        align_kernel(
            anisotropic_gaussian_kernel(11, math.sqrt(0.5), math.sqrt(3.0), 0.7).numpy(), 2
        ),
    ):
        down = Downscaler(2, kernel, torch.device("cpu"))
        before = (down(sr) - lr).abs().mean()
        after = (down(back_project(sr, lr, down, 4)) - lr).abs().mean()
        assert after < 0.7 * before


def test_self_ensemble_output_shape_and_seed_determinism():
    lr = synthetic(28, seed=2)[..., :20, :]

    def run(seed):
        return ZSSR(2, iterations=4, seed=seed, back_projection=1)(lr)

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (1, 3, 40, 56)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_learning_rate_policy_stops_training_on_a_plateau():
    flat = torch.full((1, 3, 24, 24), 0.5)  # nothing to learn: the error stops falling at once
    model = ZSSR(
        2, iterations=400, min_iterations=8, lr_check_every=5, test_every=2, lr_slope_range=10
    )
    model(flat)
    report = model.last_report
    assert report.iterations[0] < 400
    assert report.final_learning_rate[0] < model.options.min_learning_rate


def test_gradual_steps_and_kernels():
    assert default_scale_steps(2) == (2.0,)
    assert default_scale_steps(4) == (2.0, 4.0)
    assert len(default_scale_steps(3)) == 2 and math.isclose(default_scale_steps(3)[-1], 3)
    lr = synthetic(16, seed=3)
    model = ZSSR(4, iterations=2, back_projection=0, ensemble=False)
    k2 = align_kernel(bicubic_kernel(2), 2)
    sr = model.upscale(lr, steps=(2.0, 4.0), kernels=[k2, analytic_x4_kernel(k2)])
    assert sr.shape == (1, 3, 64, 64) and model.last_report.scale_steps == [2.0, 4.0]
    with pytest.raises(ZoomsrError, match="integer scale"):
        ZSSR(3, iterations=1).upscale(lr, steps=(1.5, 3.0), kernels=[k2, None])


def test_a_given_kernel_follows_kernelgans_zssr_recipe():
    lr = synthetic(24, seed=4)
    k2 = align_kernel(
        anisotropic_gaussian_kernel(11, math.sqrt(0.8), math.sqrt(2.0), 0.5).numpy(), 2
    )
    runs = []
    for overrides in ({}, {"augment": True, "loss_map": False}):
        model = ZSSR(2, iterations=3, seed=0, **overrides)
        runs.append(model.upscale(lr, steps=(2.0,), kernels=[k2]))
        run_options = (model.options.augment, model.options.loss_map)
        assert run_options == (overrides.get("augment"), overrides.get("loss_map"))
    assert runs[0].shape == (1, 3, 48, 48) and not torch.equal(runs[0], runs[1])


def test_zssr_is_registered_as_a_zeroshot_model():
    spec = get_spec("zssr")
    assert spec.task == "zeroshot" and 2 in spec.scales
    model = load_model("zssr", 2, iterations=7)
    assert model.options.iterations == 7 and model.task == "zeroshot"
    with pytest.raises(ZoomsrError, match="unknown ZSSR option"):
        load_model("zssr", 2, iteration=7)
