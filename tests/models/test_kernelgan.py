import math

import numpy as np
import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.io import read_image
from zoomsr.models.zeroshot.kernelgan import (
    DeepLinearGenerator,
    KernelGAN,
    KernelGANReport,
    PatchDiscriminator,
    estimate_kernel,
    make_config,
    medoid_run,
    penalty_mask,
)
from zoomsr.models.zeroshot.kernels import (
    align_kernel,
    bicubic_kernel,
    centre_of_mass,
    kernel_similarity,
)
from zoomsr.ops.color import quantize
from zoomsr.ops.degrade.kernels import anisotropic_gaussian_kernel, blur_downsample


def _photo_lr(shared, kernel: np.ndarray, side: int = 192) -> torch.Tensor:
    hr = read_image(shared("data", "photos", "roof_tiles.jpg")).color[None]
    h, w = hr.shape[-2:]
    hr = hr[..., (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    return quantize(blur_downsample(hr, torch.from_numpy(kernel), 2).clamp(0, 1))


def test_generator_is_one_13x13_kernel_with_stride_2():
    g = DeepLinearGenerator()
    x = torch.rand(1, 3, 64, 64)
    assert g.kernel().shape == (13, 13)
    y = g(x)
    assert y.shape == (1, 3, 26, 26)
    assert torch.allclose(y, g.forward_layerwise(x), atol=1e-6)


def test_discriminator_scores_7x7_patches():
    d = PatchDiscriminator()
    out = d(torch.rand(1, 3, 26, 26))
    assert out.shape == (1, 1, 20, 20) and out.min() >= 0 and out.max() <= 1


def test_boundaries_mask_spares_the_centre():
    m = penalty_mask(13)
    assert m[2:-2, 2:-2].abs().sum() == 0 and m[0, 0] > m[1, 1] > 0


def test_short_run_kernel_meets_the_constraints(shared):
    lr = _photo_lr(shared, align_kernel(bicubic_kernel(2), 2), side=160)
    gan = KernelGAN(make_config(iterations=150, seed=0))
    k = gan.run(lr)
    assert abs(float(k.sum()) - 1) < 1e-4
    c = (k.shape[0] - 1) / 2 + 0.5  # aligned for x2
    assert np.allclose(centre_of_mass(k), (c, c), atol=0.05)
    assert gan.report.prior_met
    raw = gan.report.raw_kernel
    assert abs(raw.sum() - 1) < 0.25  # G's kernel grew from ~0 (its init) to sum ~1
    assert abs(np.asarray(centre_of_mass(raw)) - 6.5).max() < 1.5


def test_kernelgan_is_seeded(shared):
    lr = _photo_lr(shared, align_kernel(bicubic_kernel(2), 2), side=160)
    a = KernelGAN(make_config(iterations=5, seed=3)).run(lr)
    b = KernelGAN(make_config(iterations=5, seed=3)).run(lr)
    assert np.array_equal(a, b)


def test_estimate_finds_the_orientation_of_an_anisotropic_kernel(shared):
    sx, sy = math.sqrt(0.4), math.sqrt(4.0)  # covariance eigenvalues 0.4 and 4
    true = align_kernel(anisotropic_gaussian_kernel(11, sx, sy, math.pi / 4, 0.5).numpy(), 2)
    turned = align_kernel(anisotropic_gaussian_kernel(11, sx, sy, -math.pi / 4, 0.5).numpy(), 2)
    est, _ = estimate_kernel(_photo_lr(shared, true), 2, iterations=150, seed=1)
    bicubic = align_kernel(bicubic_kernel(2), 2)
    score = kernel_similarity(est, true)
    assert score > kernel_similarity(bicubic, true) + 0.03
    assert score > kernel_similarity(est, turned) + 0.1


def test_scale_and_size_errors():
    with pytest.raises(ZoomsrError, match="x2 and x4"):
        estimate_kernel(torch.rand(1, 3, 80, 80), 3)
    with pytest.raises(ZoomsrError, match="at least 64x64"):
        KernelGAN(make_config(iterations=1)).run(torch.rand(1, 3, 40, 90))


def _report(kernel: np.ndarray, seed: int, prior_met: bool = True) -> KernelGANReport:
    return KernelGANReport(seed=seed, prior_met=prior_met, kernel_x2=kernel.astype(np.float32))


def test_medoid_keeps_the_kernel_the_live_runs_agree_on():
    narrow = anisotropic_gaussian_kernel(13, 1.0, 1.0, 0.0, 0.5).numpy()
    near = anisotropic_gaussian_kernel(13, 1.1, 1.0, 0.0, 0.5).numpy()
    wide = anisotropic_gaussian_kernel(13, 3.0, 1.0, 0.0, 0.5).numpy()
    runs = [_report(wide, 0), _report(narrow, 1), _report(near, 2)]
    assert medoid_run(runs).seed in (1, 2)
    assert medoid_run(runs).agreement > kernel_similarity(wide, narrow)
    # a dead run (G never left ~0) does not vote, even when it would win
    runs = [_report(narrow, 0, prior_met=False), _report(near, 1), _report(wide, 2)]
    runs.append(_report(narrow, 3, prior_met=False))
    assert medoid_run(runs).seed in (1, 2)
    # all dead: the medoid of all of them
    dead = [_report(k, s, prior_met=False) for s, k in enumerate((wide, narrow, near))]
    assert medoid_run(dead).seed in (1, 2)


def test_restarts_are_seeded_runs_and_return_the_medoid(shared):
    lr = _photo_lr(shared, align_kernel(bicubic_kernel(2), 2), side=160)
    kernel, report = estimate_kernel(lr, 2, iterations=20, seed=5, runs=3)
    assert [r.seed for r in report.runs] == [5, 6, 7]
    assert any(r is report for r in report.runs) and np.array_equal(kernel, report.kernel_x2)
    single, _ = estimate_kernel(lr, 2, iterations=20, seed=6, runs=1)
    assert np.array_equal(single, report.runs[1].kernel_x2)  # each run is the one-run recipe
    with pytest.raises(ZoomsrError, match="at least one run"):
        estimate_kernel(lr, 2, iterations=20, runs=0)


def test_a_run_that_never_nears_bicubic_is_marked_dead(shared):
    lr = _photo_lr(shared, align_kernel(bicubic_kernel(2), 2), side=160)
    gan = KernelGAN(make_config(iterations=3, seed=0))  # G is still ~0 after 3 steps
    gan.run(lr)
    assert not gan.report.prior_met
