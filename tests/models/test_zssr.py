import math

import numpy as np
import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.metrics.psnr import psnr
from zoomsr.models.registry import get_spec, load_model
from zoomsr.models.zeroshot import zssr as zssr_module
from zoomsr.models.zeroshot.kernels import (
    align_kernel,
    analytic_x4_kernel,
    bicubic_kernel,
    centre_of_mass,
    random_blindsr_kernel,
)
from zoomsr.models.zeroshot.zssr import (
    GRADUAL_X2,
    ZSSR,
    Downscaler,
    FatherSampler,
    ZSSRConfig,
    _dihedral,
    _Run,
    back_project,
    default_scale_steps,
    gradient_loss_map,
    official_crop_centres,
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


@pytest.mark.parametrize("scales", [(1.5, 1.0), (1.0, 1.5), (2.0, 1.5), (1 / 1.5, 0.5)])
def test_resize_takes_one_scale_per_axis(scales):
    x = torch.rand(1, 3, 24, 36)
    size = (round(24 * scales[0]), round(36 * scales[1]))
    assert torch.allclose(resize(x, scales, size), imresize(x, size=size), atol=1e-5)


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


def _official_transform(scale, diff, reflect, theta, shear, shift, size, exact):
    """The official random_augment's matrix (utils.py), written out from its description."""
    h, w = size
    to_centre = np.array([[1, 0, -w / 2.0], [0, 1, -h / 2.0], [0, 0, 1]])
    back = np.array([[1, 0, w / 2.0], [0, 1, h / 2.0], [0, 0, 1]])
    shift = np.array([[1, 0, -shift[0]], [0, 1, -shift[1]], [0, 0, 1]])
    if exact:
        to_centre, back, shift = np.round(to_centre), np.round(back), np.round(shift)
    scale_m = np.diag([reflect * (scale + diff / 2), scale - diff / 2, 1.0])
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    shear_m = np.array([[1, shear[0], 0], [shear[1], 1, 0], [0, 0, 1]])
    return back @ shift @ shear_m @ rot @ scale_m @ to_centre


@pytest.mark.parametrize(
    "scale, diff, reflect, theta, shear, exact",
    [
        (0.6, 0.1, -1.0, 0.7, (0.05, -0.08), False),  # shrunk: the crop reaches into black
        (0.95, -0.2, 1.0, 4.0, (-0.1, 0.02), False),
        (1.0, 0.0, -1.0, math.pi / 2, (0.0, 0.0), True),  # an exact quarter turn and mirror
        (1.0, 0.0, 1.0, 0.0, (0.0, 0.0), True),  # left as is: a plain crop
    ],
)
def test_official_crop_placement_matches_the_official_warp(
    scale, diff, reflect, theta, shear, exact
):
    cv2 = pytest.importorskip("cv2")
    h, w, crop = 150, 170, 128
    yy, xx = np.mgrid[0:h, 0:w] / 20.0
    image = np.stack([np.sin(xx) * np.cos(yy), np.cos(xx + yy), np.sin(0.7 * xx)], -1) * 0.4 + 0.5
    u = np.array([[0.3, 0.8]])
    shift = u[0] * np.clip(scale * np.array([w, h]) - crop, 0, None)
    t = _official_transform(scale, diff, reflect, theta, shear, shift, (h, w), exact)
    want = cv2.warpPerspective(image.astype(np.float32), t, (crop, crop), flags=cv2.INTER_CUBIC)

    a_inv = np.linalg.inv(t[:2, :2])[None]
    centre = official_crop_centres(a_inv, np.array([scale]), np.array([not exact]), (h, w), crop, u)
    sampler = FatherSampler(ZSSRConfig(crop_sampling="official"), crop, torch.Generator())
    src = torch.from_numpy(image.transpose(2, 0, 1)).float()[None]
    got = sampler._warp(src, a_inv, centre, h, w)[0].numpy().transpose(1, 2, 0)
    # cv2 rounds sampling positions to 1/32 pixel; a misplaced crop is off by whole pixels.
    assert np.abs(got - want).mean() < 2e-3
    # Shrunk or turned crops reach past the image into black, whole-pixel crops stay inside.
    assert (want == 0).all(-1).any() == (not exact)


def test_official_placement_crops_small_images_at_full_size_into_black():
    image = torch.rand(1, 3, 40, 50) * 0.8 + 0.1  # no black of its own
    for placement, side in (("official", 64), ("gradient", 40)):
        cfg = ZSSRConfig(crop_sampling=placement, crop_size=64)
        run = _Run(cfg, image, (2.0,), [None], torch.device("cpu"), None)
        assert run._crop_size() == side  # only the official crops are larger than the image
    sampler = FatherSampler(ZSSRConfig(crop_sampling="official"), 64, torch.Generator())
    sampler.add_source(image, 1.0)
    fathers = sampler.sample(16, 1.0)
    assert fathers.shape == (16, 3, 64, 64)
    black = (fathers == 0).all(1).flatten(1).any(1)
    assert bool(black.all())  # every 64-px crop of a 40x50 image reaches past it
    kept = FatherSampler(ZSSRConfig(), 40, torch.Generator())
    kept.add_source(image, 1.0)
    assert not bool((kept.sample(16, 1.0)[:, :, 16:24, 16:24] == 0).all(1).any())


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


def test_official_gradual_x2_runs_its_anisotropic_steps(monkeypatch):
    lr = synthetic(20, seed=5)
    members, counts = [], []
    real_back_project = zssr_module.back_project

    def spy_dihedral(x, k):
        members.append(k)
        return _dihedral(x, k)

    def spy_back_project(sr, lr, down, n):
        counts.append(n)
        return real_back_project(sr, lr, down, n)

    monkeypatch.setattr(zssr_module, "_dihedral", spy_dihedral)
    monkeypatch.setattr(zssr_module, "back_project", spy_back_project)
    model = ZSSR(2, iterations=2, crop_size=16, **GRADUAL_X2)
    sr = model(lr)
    assert sr.shape == (1, 3, 40, 40)
    steps = [(1.0, 1.5), (1.5, 1.0), 1.5, (1.5, 2.0), (2.0, 1.5), 2.0]
    assert model.last_report.scale_steps == steps
    # Anisotropic steps ensemble over half turns and mirrors only, isotropic ones over all 8.
    assert members == [0, 2, 4, 6] * 2 + list(range(8)) + [0, 2, 4, 6] * 2 + list(range(8))
    # Each step back-projects its members and their median with its own count.
    per_step = [c for c in GRADUAL_X2["back_projection"] for _ in range(5 if c in (6, 10) else 9)]
    assert counts == per_step
    with pytest.raises(ZoomsrError, match="back-projection counts"):
        ZSSR(2, iterations=1, back_projection=(1, 2)).upscale(lr, steps=(1.5, 2.0, 2.0))


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
