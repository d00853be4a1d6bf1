"""SDFlow x4 against the official networks (../shared/parity/sdflow_x4), plus exactness checks.

Images and latents are compared at 1e-4 max abs; log-determinants (sums of ~10^4 terms, values
up to 4.4e4 where one float32 step is 4e-3) at 1e-4 + 1e-6 relative, as the fixture README
advises for summation order; uint8 images at ±1 (truncation boundary).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomsr.cli.main import main
from zoomsr.convert.sdflow import convert_sdflow_states, load_sdflow
from zoomsr.errors import ZoomsrError
from zoomsr.models import get_spec, load_model
from zoomsr.models.flow import SDFlow, SDFlowConfig

FIXTURE = ("parity", "sdflow_x4")
FILES = ("lrencoder", "hrnet", "contentnet", "degnet")
ATOL = 1e-4
LOGDETS = {
    "hr_fwd_ldj_pre_split.npy",
    "hr_fwd_ldj.npy",
    "lr_fwd_ldj.npy",
    "deg_fwd_ldj.npy",
}
REDUCED = dict(
    hr_steps=2, hf_steps=2, hf_rrdbs=1, lr_steps=2, deg_steps=2, deg_rrdbs=1, encoder_blocks=2
)
TINY = dict(
    hr_steps=1,
    hf_steps=2,
    hf_rrdbs=1,
    lr_steps=1,
    deg_steps=2,
    deg_rrdbs=1,
    encoder_blocks=1,
    n_gaussians=3,
    hidden=8,
    cond_channels=8,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _load(shared, name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(shared(*FIXTURE, name)))


def _image(shared, name: str) -> torch.Tensor:
    """A fixture uint8 HWC image as a 1 x 3 x H x W tensor in [0, 1]."""
    return _load(shared, name).permute(2, 0, 1)[None].float() / 255


def _u8(x: torch.Tensor) -> torch.Tensor:
    """The official scripts' post-processing on a [0, 1] image: truncation to uint8, HWC."""
    return (x * 255).to(torch.uint8)[0].permute(1, 2, 0)


def _weights(shared) -> list[str]:
    return [str(shared(*FIXTURE, "weights", f"{f}.pth")) for f in FILES]


@pytest.fixture(scope="module")
def model(shared) -> SDFlow:
    return load_sdflow(*_weights(shared))


@pytest.fixture(scope="module")
def outputs(model, shared) -> dict[str, torch.Tensor]:
    """Every fixture output, recomputed from the fixture inputs, weights and recorded noise."""
    load = lambda name: _load(shared, name)  # noqa: E731
    out = {}
    with torch.no_grad():
        z_c = model.content(load("lr_in.npy"))
        out["sr_zc.npy"] = z_c
        out["sr_tau0_out.npy"] = model.sr_from_content(z_c, 0.0)
        noise = load("sr_tau0.8_eps.npy") / 0.8
        out["sr_tau0.8_out.npy"] = model.sr_from_content(z_c, 0.8, noise=noise)

        hr = model.hr_forward(load("hr_in.npy"))
        out.update(
            {
                "ds_zc.npy": hr.z_c,
                "hr_fwd_z48.npy": hr.z,
                "hr_fwd_zh_prime.npy": hr.z_h_prime,
                "hr_fwd_ldj_pre_split.npy": hr.logdet_levels,
                "hr_fwd_ldj.npy": hr.log_likelihood,
            }
        )
        z_lr, ldj = model.lr_forward(load("lr_in.npy"))
        out["lr_fwd_zlr.npy"], out["lr_fwd_ldj.npy"] = z_lr, ldj
        z_d, ldj = model.deg_forward(z_lr - z_c, z_c)
        out["deg_fwd_zd_prime.npy"] = z_d
        out["deg_fwd_ldj.npy"] = ldj + model.deg_flow.log_prior(z_d)

        for tau, eps in (("0.8", load("ds_tau0.8_eps.npy") / 0.8), ("0", None)):
            k = load(f"ds_tau{tau}_k.npy")
            lr, z_d = model.lr_from_content(hr.z_c, float(tau), noise=eps, component=k)
            out[f"ds_tau{tau}_out.npy"], out[f"ds_tau{tau}_deg.npy"] = lr, z_d
    return out


# -- (a) parity ------------------------------------------------------------------------------


def test_every_fixture_output(outputs, shared):
    computed = {
        "sr_zc.npy",
        "sr_tau0_out.npy",
        "sr_tau0.8_out.npy",
        "ds_zc.npy",
        "hr_fwd_z48.npy",
        "hr_fwd_zh_prime.npy",
        "hr_fwd_ldj_pre_split.npy",
        "hr_fwd_ldj.npy",
        "lr_fwd_zlr.npy",
        "lr_fwd_ldj.npy",
        "deg_fwd_zd_prime.npy",
        "deg_fwd_ldj.npy",
        "ds_tau0.8_deg.npy",
        "ds_tau0.8_out.npy",
        "ds_tau0_deg.npy",
        "ds_tau0_out.npy",
    }
    assert set(outputs) == computed  # the README's 16 computed arrays
    for name, got in outputs.items():
        expected = _load(shared, name)
        assert got.shape == expected.shape, name
        rtol = 1e-6 if name in LOGDETS else 0.0
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=rtol, msg=name)


def test_public_api_reproduces_the_scripts(model, shared):
    """uint8 in, uint8 out as ``sdflow_sr.py`` / ``sdflow_ds.py``; the generator seeds of the
    fixture replay its noise (one randn call; the DS component is numpy's, so it is given)."""
    lr, hr = _image(shared, "lr_u8.npy"), _image(shared, "hr_u8.npy")
    with torch.no_grad():
        sr = model.upscale(lr, 0.8, generator=torch.Generator().manual_seed(2024))
        k = int(_load(shared, "ds_tau0.8_k.npy"))
        ds = model.downscale(hr, 0.8, generator=torch.Generator().manual_seed(2025), component=k)
        sr0, ds0 = model.upscale(lr), model.downscale(hr, component=1)
    for got, name in ((sr, "sr_tau0.8"), (ds, "ds_tau0.8"), (ds0, "ds_tau0"), (sr0, "sr_tau0")):
        expected = _load(shared, f"{name}_out.npy")
        torch.testing.assert_close(got, ((expected + 1) / 2).clamp(0, 1), atol=ATOL, rtol=0)
    for got, name in ((sr, "sr_tau0.8_u8.npy"), (ds, "ds_tau0.8_u8.npy")):
        diff = (_u8(got).int() - _load(shared, name).int()).abs()
        assert diff.max() <= 1, name


def test_converted_file_round_trip(model, shared, tmp_path, capsys):
    out = tmp_path / "sdflow_x4.safetensors"
    assert main(["convert", "sdflow", *_weights(shared), "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith("sdflow x4 (2,805,741 trainable parameters)")
    loaded = load_model(str(out))  # the file alone says what to build
    assert loaded.cfg == model.cfg
    lr = _image(shared, "lr_u8.npy")
    with torch.no_grad():
        torch.testing.assert_close(loaded.upscale(lr), model.upscale(lr), atol=0, rtol=0)


def test_converter_rejects_foreign_keys_and_constants(shared):
    states = {
        f: torch.load(p, weights_only=True) for f, p in zip(FILES, _weights(shared), strict=True)
    }
    state, config = convert_sdflow_states(states)
    assert config == {**REDUCED, "n_gaussians": 16}
    assert not any("coulping" in k or "l_mask" in k for k in state)
    bad = {**states, "hrnet": {**states["hrnet"], "blocks.0.extra.weight": torch.zeros(1)}}
    with pytest.raises(ZoomsrError, match=r"blocks\.0\.extra\.weight"):
        convert_sdflow_states(bad)
    key = "blocks.0.steps.0.permute.l_mask"
    bad = {**states, "hrnet": {**states["hrnet"], key: torch.ones(12, 12)}}
    with pytest.raises(ZoomsrError, match="l_mask"):
        convert_sdflow_states(bad)


# -- (b) invertibility -----------------------------------------------------------------------


def test_flows_invert_on_random_inputs(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = torch.rand(2, 3, 32, 40, generator=g) * 2 - 1
        hr = model.hr_forward(x)
        back = model.hr_flow.reverse(hr.z_c, hr.z_h_prime)
        torch.testing.assert_close(back, x, atol=1e-4, rtol=0)

        lr = torch.rand(2, 3, 16, 20, generator=g) * 2 - 1
        z, _ = model.lr_forward(lr)
        torch.testing.assert_close(model.lr_flow.reverse(z), lr, atol=1e-4, rtol=0)

        z_d, z_c = torch.randn(2, 2, 3, 16, 20, generator=g)
        z_prime, _ = model.deg_forward(z_d, z_c)
        assert z_prime.shape == (2, 12, 8, 10)
        torch.testing.assert_close(model.deg_flow.reverse(z_prime, z_c), z_d, atol=1e-4, rtol=0)


# -- (c) exact log-determinants ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> SDFlow:
    """A tiny float64 SDFlow with randomised weights (couplings far from identity). The LU
    factors keep their random-orthogonal init: perturbed unit-triangular factors are
    exponentially ill-conditioned in the channel count."""
    torch.manual_seed(0)
    model = SDFlow(SDFlowConfig(**TINY)).double().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("w_l", "w_u")):
                p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _jacobian_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    jac = torch.autograd.functional.jacobian(fn, x, vectorize=True)
    return torch.linalg.slogdet(jac.reshape(x.numel(), x.numel()))[1]


def test_hr_flow_logdet_is_the_jacobian(tiny):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = tiny.hr_forward(x)

    def latents(v: torch.Tensor) -> torch.Tensor:  # (z_c, z_h'), the full HR-side flow
        hr = tiny.hr_forward(v)
        return torch.cat([hr.z_c.flatten(), hr.z_h_prime.flatten()])

    levels = _jacobian_logdet(lambda v: tiny.hr_forward(v).z.flatten(), x)
    full = _jacobian_logdet(latents, x)
    torch.testing.assert_close(out.logdet_levels, levels.reshape(1), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(out.logdet, full.reshape(1), atol=1e-8, rtol=1e-8)
    assert abs(out.logdet - out.logdet_levels) > 0.1  # the HF flow contributes


def test_lr_and_deg_flow_logdets_are_the_jacobian(tiny):
    g = torch.Generator().manual_seed(3)
    lr = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
    _, logdet = tiny.lr_forward(lr)
    expected = _jacobian_logdet(lambda v: tiny.lr_forward(v)[0].flatten(), lr)
    torch.testing.assert_close(logdet, expected.reshape(1), atol=1e-8, rtol=1e-8)

    z_d, z_c = torch.randn(2, 1, 3, 4, 4, generator=g, dtype=torch.float64)
    _, logdet = tiny.deg_forward(z_d, z_c)
    expected = _jacobian_logdet(lambda v: tiny.deg_forward(v, z_c)[0].flatten(), z_d)
    torch.testing.assert_close(logdet, expected.reshape(1), atol=1e-8, rtol=1e-8)


def test_tiny_model_inverts_exactly(tiny):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    out = tiny.hr_forward(x)
    torch.testing.assert_close(tiny.hr_flow.reverse(out.z_c, out.z_h_prime), x)


# -- (d) parameter counts --------------------------------------------------------------------


def test_parameter_counts(model):
    """Fixture README §1 (reduced) and reference §9 (official)."""
    parts = (model.lr_encoder, model.hr_flow, model.lr_flow, model.deg_flow)
    assert [_count(p) for p in parts] == [515_335, 1_248_054, 31_176, 1_011_176]
    assert _count(model) == 2_805_741
    full = load_model("sdflow", 4)
    parts = (full.lr_encoder, full.hr_flow, full.lr_flow, full.deg_flow)
    assert [_count(p) for p in parts] == [1_782_307, 8_266_644, 240_336, 3_810_032]
    assert _count(full) == 14_099_319
    assert _count(full.lr_encoder) + _count(full.hr_flow) == 10_048_951  # the SR path


def test_registry_entry():
    spec = get_spec("sdflow")
    assert (spec.task, spec.scales) == ("flow", (4,))
    with pytest.raises(ZoomsrError, match="does not support scale 2"):
        load_model("sdflow", 2)
    with pytest.raises(ZoomsrError, match="did you mean 'hr_steps'"):
        load_model("sdflow", 4, hr_step=2)


# -- (e) sampling ----------------------------------------------------------------------------


def test_tau0_is_deterministic_and_tau_samples_differ(model, shared):
    lr, hr = _image(shared, "lr_u8.npy"), _image(shared, "hr_u8.npy")
    draw = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    with torch.no_grad():
        assert torch.equal(
            model.upscale(lr, generator=draw(1)), model.upscale(lr, generator=draw(2))
        )
        a, b = (model.upscale(lr, 0.8, generator=draw(s)) for s in (1, 2))
        assert (a - b).abs().max() > 0.05
        assert torch.equal(a, model.upscale(lr, 0.8, generator=draw(1)))

        # tau = 0 downscaling depends on the mixture component only (reference §10.6)
        d0 = model.downscale(hr, component=3, generator=draw(1))
        assert torch.equal(d0, model.downscale(hr, component=3, generator=draw(2)))
        assert not torch.equal(d0, model.downscale(hr, component=4))
        c, d = (model.downscale(hr, 0.8, component=3, generator=draw(s)) for s in (1, 2))
        assert (c - d).abs().max() > 0.01


def test_downscale_pads_to_eight_and_checks_sizes(model):
    hr = torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        lr = model.downscale(hr, 0.8, generator=torch.Generator().manual_seed(6))
        assert lr.shape == (2, 3, 9, 11)
        assert lr.min() >= 0 and lr.max() <= 1
        with pytest.raises(ZoomsrError, match="multiples of 4"):
            model.downscale(hr[:, :, :34])
        assert model.upscale(hr[:, :, :5, :7]).shape == (2, 3, 20, 28)


def test_actnorm_data_init_in_training():
    torch.manual_seed(0)
    model = SDFlow(SDFlowConfig(**TINY)).train()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    model.lr_forward(x[:, :, :8, :8])
    first = model.hr_flow.levels[0].transition[0].actnorm
    assert not first.initialized
    z, _ = first(torch.nn.functional.pixel_unshuffle(x, 2), torch.zeros(4))
    assert first.initialized
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std((0, 2, 3), correction=0), torch.ones(12), atol=1e-4, rtol=0)
