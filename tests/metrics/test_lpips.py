"""LPIPS v0.1 (zoomsr.metrics.lpips) against the reference values of shared/data/lpips_reference.

Needs the converted weights (``zoomsr backbones install``); missing ones fail with that hint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from zoomsr.backbones import verify_cache
from zoomsr.errors import WeightsNotFoundError, ZoomsrError
from zoomsr.metrics import lpips as lpips_module
from zoomsr.metrics.lpips import LPIPS, lpips


@pytest.fixture(scope="module")
def expected(shared):
    problems = verify_cache()
    if problems:
        pytest.fail(
            f"backbone weights missing or broken ({problems[0]}); run 'zoomsr backbones install'"
        )
    return json.loads(shared("data", "lpips_reference", "expected.json").read_text())


@pytest.fixture(scope="module")
def images(shared):
    def load(name):
        path = shared("data", "lpips_reference", name)
        array = np.array(Image.open(path).convert("RGB"))
        return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255

    return {n: load(n) for n in ("ex_ref.png", "ex_p0.png", "ex_p1.png")}


@pytest.fixture(scope="module")
def nets(expected):
    return {"alex": LPIPS("alex"), "vgg": LPIPS("vgg")}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_reference_values(nets, expected, images, net):
    for pair, values in expected.items():
        a, b = pair.split("|")
        with torch.no_grad():
            d = nets[net](images[a], images[b])
        assert d.shape == (1,)
        assert abs(d.item() - values[net]) <= 1e-4, (pair, d.item(), values[net])
        if values["published"]:
            assert abs(d.item() - values["published"][net]) <= 5e-4, pair


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_identity_symmetry_and_batches(nets, images, net):
    ref, p0, p1 = images.values()
    model = nets[net]
    with torch.no_grad():
        assert model(ref, ref).item() == 0.0
        assert model(ref, p0).item() == model(p0, ref).item()
        batch = model(torch.cat([ref, ref, p0]), torch.cat([p0, p1, p1]))
        single = torch.cat([model(ref, p0), model(ref, p1), model(p0, p1)])
    assert batch.shape == (3,)
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-6)


def test_gray_inputs_are_replicated(nets, images):
    gray_a = images["ex_ref.png"].mean(1, keepdim=True)
    gray_b = images["ex_p0.png"].mean(1, keepdim=True)
    with torch.no_grad():
        d_gray = nets["alex"](gray_a, gray_b)
        d_rgb = nets["alex"](gray_a.expand(-1, 3, -1, -1), gray_b.expand(-1, 3, -1, -1))
    assert d_gray.item() == d_rgb.item()


def test_function_caches_the_module(nets, images):
    a, b = images["ex_ref.png"], images["ex_p1.png"]
    first = lpips(a, b, net="vgg")
    module = lpips_module._CACHE[("vgg", "cpu")]
    assert lpips(a, b, net="vgg16").item() == first.item()  # alias, same cached module
    assert lpips_module._CACHE[("vgg", "cpu")] is module
    with torch.no_grad():
        assert first.item() == pytest.approx(nets["vgg"](a, b).item(), abs=1e-7)


def test_differentiable_in_inputs_only(nets, images):
    x = images["ex_p0.png"].clone().requires_grad_(True)
    nets["alex"](x, images["ex_ref.png"]).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in nets["alex"].parameters())
    nets["alex"].train()
    assert not nets["alex"].training


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(ZoomsrError, match="unknown LPIPS network"):
        LPIPS("squeeze")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(WeightsNotFoundError, match="zoomsr backbones install"):
        LPIPS("alex", cache_dir=tmp_path)
