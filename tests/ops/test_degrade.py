"""Degradation ops and presets: kernels, blur, noise, JPEG, camera pipeline, presets, trainer."""

import json
import math

import pytest
import torch
from PIL import Image

from zoomsr.data.degraded import (
    LEARNED,
    DegradedTrainSet,
    load_degradation_yaml,
    resolve_degradation,
)
from zoomsr.data.sisr import SISRTrainSet
from zoomsr.errors import ZoomsrError
from zoomsr.io import read_image
from zoomsr.ops import degrade as D
from zoomsr.ops.resize import imresize

PRESETS = sorted(D.PRESETS)


@pytest.fixture(scope="module")
def butterfly(shared) -> torch.Tensor:
    """Two 64 x 64 crops of Set5's butterfly as a batch (real content for JPEG and noise)."""
    im = read_image(shared("data", "Set5", "HR", "butterfly.png")).color
    return torch.stack([im[:, 40:104, 40:104], im[:, 150:214, 100:164]]).contiguous()


def _moments(k: torch.Tensor) -> torch.Tensor:
    """Mean-centred second moments [[xx, xy], [xy, yy]] of a kernel."""
    r = torch.arange(k.shape[-1], dtype=torch.float64) - k.shape[-1] // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    k = k.double()
    mx, my = (k * x).sum(), (k * y).sum()
    xx, yy, xy = (
        (k * (x - mx) ** 2).sum(),
        (k * (y - my) ** 2).sum(),
        (k * (x - mx) * (y - my)).sum(),
    )
    return torch.stack([torch.stack([xx, xy]), torch.stack([xy, yy])])


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize(
    "make",
    [
        lambda: D.isotropic_gaussian_kernel(13, 1.5),
        lambda: D.anisotropic_gaussian_kernel(13, 2.0, 0.7, 0.4),
        lambda: D.generalized_gaussian_kernel(13, 2.0, 0.7, 0.4, 0.6),
        lambda: D.plateau_kernel(13, 2.0, 0.7, 0.4, 1.5),
        lambda: D.motion_kernel(13, 7.0, 0.3),
        lambda: D.sinc_kernel(13, 1.2),
    ],
)
def test_every_kernel_is_odd_square_and_sums_to_one(make):
    k = make()
    assert k.shape == (13, 13) and k.dtype == torch.float32
    assert abs(float(k.sum()) - 1) < 1e-5
    # All of these are point-symmetric about the centre.
    assert torch.allclose(k, k.flip(-1, -2), atol=1e-7)


def test_isotropic_and_sinc_kernels_have_every_symmetry():
    for k in (D.isotropic_gaussian_kernel(11, 1.3), D.sinc_kernel(11, 1.0)):
        for t in (k.flip(-1), k.flip(-2), k.transpose(-1, -2)):
            assert torch.allclose(k, t, atol=1e-7)
    assert D.sinc_kernel(21, math.pi / 4).min() < 0  # ringing lobes


def test_anisotropic_covariance_is_the_requested_one():
    sx, sy, theta = 2.5, 1.0, 0.6
    k = D.anisotropic_gaussian_kernel(41, sx, sy, theta)
    c, s = math.cos(theta), math.sin(theta)
    want = torch.tensor(
        [[c * c * sx**2 + s * s * sy**2, c * s * (sx**2 - sy**2)],
         [c * s * (sx**2 - sy**2), s * s * sx**2 + c * c * sy**2]],
        dtype=torch.float64,
    )  # fmt: skip
    assert torch.allclose(D.gaussian_covariance(sx, sy, theta), want, atol=1e-12)
    assert torch.allclose(_moments(k), want, rtol=0.01, atol=0.01)
    # Its long axis is at theta: rotating by 90 degrees swaps the roles of the sigmas.
    assert torch.allclose(
        D.anisotropic_gaussian_kernel(41, sx, sy, theta + math.pi / 2),
        D.anisotropic_gaussian_kernel(41, sy, sx, theta),
        atol=1e-6,
    )


def test_special_cases_of_the_kernel_families():
    g = D.anisotropic_gaussian_kernel(15, 2.0, 1.0, 0.3)
    assert torch.allclose(D.generalized_gaussian_kernel(15, 2.0, 1.0, 0.3, 1.0), g, atol=1e-7)
    # beta > 1: a flatter top (the tap next to the centre is closer to the peak), and the
    # faster fall beyond one sigma concentrates the mass, so the peak itself is higher.
    flat = D.generalized_gaussian_kernel(15, 2.0, 1.0, 0.3, 4.0)
    assert flat[7, 8] / flat[7, 7] > g[7, 8] / g[7, 7]
    assert flat.max() > g.max()
    delta = torch.zeros(7, 7)
    delta[3, 3] = 1
    assert torch.equal(D.motion_kernel(7, 0.0, 1.0), delta)
    horizontal = D.motion_kernel(9, 4.0, 0.0)
    assert horizontal[4].sum() > 0.99 and torch.allclose(horizontal, horizontal.flip(-1))


def test_kernels_broadcast_over_a_batch_of_parameters():
    sig = torch.tensor([0.5, 1.0, 2.0])
    ks = D.anisotropic_gaussian_kernel(9, sig, 1.0, 0.2)
    assert ks.shape == (3, 9, 9)
    assert torch.equal(ks[2], D.anisotropic_gaussian_kernel(9, 2.0, 1.0, 0.2))
    assert torch.allclose(ks.sum(dim=(-2, -1)), torch.ones(3))


def test_offset_moves_the_mean_and_truncation_matches_a_smaller_kernel():
    cov = D.gaussian_covariance(1.0, 1.0, 0.0)
    k = D.gaussian_kernel_from_covariance(15, cov, offset=1.5).double()
    r = torch.arange(15, dtype=torch.float64) - 7
    assert abs(float((k.sum(0) * r).sum()) - 1.5) < 1e-6  # x mean
    assert abs(float((k.sum(1) * r).sum()) - 1.5) < 1e-6  # y mean
    big = D.sinc_kernel(21, torch.tensor([1.0, 2.0]))
    cut = D.truncate_kernel(big, torch.tensor([7, 21]))
    assert torch.allclose(cut[0], D.pad_kernel(D.sinc_kernel(7, 1.0), 21), atol=1e-6)
    assert torch.allclose(cut[1], big[1])


# --------------------------------------------------------------------------- blur, resize


def test_blur_applies_one_kernel_per_sample(butterfly):
    ks = D.isotropic_gaussian_kernel(9, torch.tensor([0.6, 2.0]))
    both = D.blur(butterfly, ks)
    for i in range(2):
        assert torch.allclose(both[i : i + 1], D.blur(butterfly[i : i + 1], ks[i]), atol=1e-6)
    delta = D.pad_kernel(torch.ones(1, 1), 9)
    assert torch.allclose(D.blur(butterfly, delta), butterfly)
    assert both[1].std() < both[0].std()  # the wider kernel smooths more


def test_blur_downsample_samples_every_s_th_pixel(butterfly):
    delta = D.pad_kernel(torch.ones(1, 1), 5)
    assert torch.equal(D.blur_downsample(butterfly, delta, 4), butterfly[..., ::4, ::4])
    odd = butterfly[..., :63, :62]
    assert D.blur_downsample(odd, D.isotropic_gaussian_kernel(7, 1.0), 2).shape[-2:] == (32, 31)


def test_resize_modes(butterfly):
    assert torch.equal(D.resize(butterfly, (16, 16), "bicubic"), imresize(butterfly, size=(16, 16)))
    for mode in D.RESIZE_MODES:
        assert D.resize(butterfly, (21, 30), mode).shape == (2, 3, 21, 30)
    with pytest.raises(ZoomsrError, match="unknown resize mode"):
        D.resize(butterfly, (8, 8), "lanczos")


# --------------------------------------------------------------------------- noise, JPEG, camera


def test_gaussian_noise_level_and_gray_mode():
    x = torch.full((2, 3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    y = D.gaussian_noise(x, torch.tensor([10 / 255, 20 / 255]), g, gray=torch.tensor([False, True]))
    assert abs(float((y[0] - x[0]).std()) * 255 - 10) < 0.5
    assert abs(float((y[1] - x[1]).std()) * 255 - 20) < 1.0
    assert torch.equal(y[1, 0], y[1, 2]) and not torch.equal(y[0, 0], y[0, 2])


def test_correlated_and_poisson_noise_are_seeded(butterfly):
    cov = torch.eye(3) * (10 / 255) ** 2
    a = D.correlated_gaussian_noise(butterfly, cov, torch.Generator().manual_seed(1))
    b = D.correlated_gaussian_noise(butterfly, cov, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, butterfly)
    p = D.poisson_noise(butterfly, 1.0, torch.Generator().manual_seed(2), gray=True)
    assert torch.equal(
        p, D.poisson_noise(butterfly, 1.0, torch.Generator().manual_seed(2), gray=True)
    )
    assert 0 < float((p - butterfly).abs().mean()) < 0.1


def test_jpeg_codecs_and_per_sample_quality(butterfly):
    low, high = (
        D.jpeg_compress(butterfly, torch.tensor([10, 95])).sub(butterfly).abs().mean((1, 2, 3))
    )
    assert low > 2 * high
    pil = D.jpeg_compress(butterfly, 50, codec="pillow")
    assert pil.shape == butterfly.shape and float((pil - butterfly).abs().mean()) < 0.05
    gray = D.jpeg_compress(butterfly[:, :1], 50)
    assert gray.shape == (2, 1, 64, 64)


def test_unprocess_process_round_trip_and_camera_noise(butterfly):
    g = torch.Generator().manual_seed(3)
    cam = D.random_camera(g, 2)
    raw = D.unprocess(butterfly, cam)
    assert raw.shape == (2, 4, 32, 32) and raw.min() >= 0
    # Every step but demosaicing is inverted exactly: flat colours (which bilinear demosaicing
    # reproduces) come back to float precision; on the butterfly's sharp edges only the
    # demosaicing error remains.
    flat = torch.rand(2, 3, 1, 1, generator=g).mul(0.9).add(0.05).expand(2, 3, 16, 16)
    assert float((D.process(D.unprocess(flat, cam), cam) - flat).abs().max()) < 1e-4
    back = D.process(raw, cam)
    assert float((back - butterfly).abs().mean()) < 0.05
    noisy, record = D.camera_noise(butterfly[..., :63, :63], torch.Generator().manual_seed(4))
    again, record2 = D.camera_noise(butterfly[..., :63, :63], torch.Generator().manual_seed(4))
    assert noisy.shape == (2, 3, 63, 63) and torch.equal(noisy, again) and record == record2
    assert len(record["shot"]) == 2 and 1e-4 <= min(record["shot"]) <= max(record["shot"]) <= 1.2e-2


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("scale", [2, 4])
def test_presets_run_on_a_batch(butterfly, preset, scale):
    lr, record = D.degrade(butterfly, preset, scale, seed=7)
    assert lr.shape == (2, 3, 64 // scale, 64 // scale)
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(torch.round(lr * 255) / 255, lr)  # on the 8-bit grid, as a file
    assert record["preset"] == preset and record["scale"] == scale
    json.dumps(record)  # every drawn parameter, serialisable


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_are_deterministic_for_a_seed(butterfly, preset):
    a, ra = D.degrade(butterfly, preset, 4, seed=11)
    b, rb = D.degrade(butterfly, preset, 4, seed=torch.Generator().manual_seed(11))
    assert torch.equal(a, b) and ra == rb
    c, rc = D.degrade(butterfly, preset, 4, seed=12)
    assert not torch.equal(a, c) and ra != rc


def test_record_has_per_sample_values(butterfly):
    _, record = D.degrade(butterfly, "realesrgan", 4, seed=0)
    blur = record["steps"][0]
    assert blur["op"] == "blur" and len(blur["kernel"]) == len(blur["size"]) == 2
    assert all(7 <= s <= 21 and s % 2 for s in blur["size"])
    _, record = D.degrade(butterfly, "bsrgan", 4, seed=0)
    ops = [s["op"] for s in record["steps"]]
    assert ops.count("blur") == 2 and ops[-1] == "jpeg" and "gaussian_noise" in ops


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ZoomsrError, match="bsrgan, div2krk, realesrgan"):
        D.Degradation("bsrgan2")


# --------------------------------------------------------------------------- trainer hook-up


def test_resolve_degradation(tmp_path, monkeypatch):
    assert resolve_degradation("bicubic") is None
    assert resolve_degradation("bsrgan").name == "bsrgan"
    with pytest.raises(
        ZoomsrError, match=r"unknown degradation 'blur'; use one of bicubic, bsrgan"
    ):
        resolve_degradation("blur")
    with pytest.raises(ZoomsrError, match=r"unknown degradation 'nosuch:x\.safetensors'"):
        resolve_degradation("nosuch:x.safetensors")
    with pytest.raises(ZoomsrError, match=r"SDFlow degradation model 'x\.safetensors' not found"):
        resolve_degradation("sdflow:x.safetensors")
    monkeypatch.setitem(LEARNED, "fake", lambda arg: ("made from", arg))
    assert resolve_degradation("fake:ckpt") == ("made from", "ckpt")

    path = tmp_path / "mild.yaml"
    path.write_text("preset: realesrgan\nfirst: {sigma: [0.2, 1.0]}\njpeg_typo: 3\n")
    with pytest.raises(ZoomsrError, match="unknown realesrgan parameter 'jpeg_typo'"):
        resolve_degradation(str(path))
    path.write_text("preset: bsrgan\njpeg_quality: [90, 95]\ncamera_prob: 0.0\n")
    deg = load_degradation_yaml(path)
    assert deg.config.jpeg_quality == (90, 95) and deg.config.camera_prob == 0.0
    with pytest.raises(ZoomsrError, match="not found"):
        resolve_degradation(str(tmp_path / "missing.yaml"))


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, 80, 96), generator=g, dtype=torch.uint8) for _ in range(2)]


def test_degraded_set_keeps_the_bicubic_patches():
    plain = SISRTrainSet(_images(), scale=4, patch=32, seed=3)
    ds = DegradedTrainSet(_images(), 4, 32, 3, degradation=D.Degradation("bsrgan"))
    lr, hr = ds[5]
    assert lr.shape == (3, 8, 8) and torch.equal(hr, plain[5][1])
    assert torch.equal(ds[5][0], lr) and not torch.equal(ds[6][0], lr)
    assert ds.item_with_record(5)[2]["preset"] == "bsrgan"


def test_trainer_runs_with_a_preset(shared, tmp_path):
    from zoomsr.train.config import load_config
    from zoomsr.train.engine import Trainer

    folder = tmp_path / "hr"
    folder.mkdir()
    im = Image.open(shared("data", "Set5", "HR", "bird.png")).convert("RGB")
    im.crop((0, 0, 96, 96)).save(folder / "bird.png")
    overrides = [
        "model.name=postup",
        "model.scale=2",
        f"data.train.hr=[{folder}]",
        "data.train.patch=32",
        "data.train.degradation=realesrgan",
        "data.batch=2",
        "run.steps=2",
        f"run.out={tmp_path / 'run'}",
        "run.checkpoint_every=1000",
    ]
    trainer = Trainer(load_config(None, overrides), quiet=True)
    assert isinstance(trainer.batches().dataset, DegradedTrainSet)
    assert trainer.fit()["step"] == 2
    with pytest.raises(ZoomsrError, match="unknown degradation 'bsrgan-x'"):
        Trainer(
            load_config(None, [*overrides[:4], "data.train.degradation=bsrgan-x"]), quiet=True
        ).fit()
