"""Shipped zoom weights: float16, ImageNet matcher left out and rebuilt on load."""

import pytest
import torch
from safetensors.torch import save_file

from zoomsr.errors import ZoomsrError
from zoomsr.models.checkpoints import (
    load_checkpoint_model,
    read_weights,
    save_weights,
    shipping_state,
)
from zoomsr.models.registry import load_model


@pytest.fixture(scope="module")
def pp_file(tmp_path_factory):
    torch.manual_seed(0)
    model = load_model("selfdzsr-pp", 4, "cpu", n_blocks=2)
    model.matcher.load_imagenet()
    return save_weights(model, tmp_path_factory.mktemp("w") / "pp.safetensors"), model


def test_half_without_matcher_reloads_to_nearly_the_same_model(pp_file, tmp_path):
    path, model = pp_file
    state, meta = shipping_state(*read_weights(path), half=True, drop_imagenet_matcher=True)
    assert not any(k.startswith("matcher.") for k in state)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    small = tmp_path / "small.safetensors"
    save_file(state, str(small), metadata=meta)
    assert small.stat().st_size < path.stat().st_size / 2
    again = load_checkpoint_model(small)
    assert all(p.dtype == torch.float32 for p in again.parameters())
    ref_state = model.state_dict()
    for k, v in again.state_dict().items():
        tol = 0 if k.startswith("matcher.") else 2e-3 * (1 + float(ref_state[k].abs().max()))
        assert (v - ref_state[k]).abs().max() <= tol, k
    g = torch.Generator().manual_seed(1)
    lr, ref = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        a = model.eval()(lr, [ref], [(12, 20, 12, 20)])
        b = again(lr, [ref], [(12, 20, 12, 20)])
    assert (a - b).abs().max() < 1e-2


def test_a_non_imagenet_matcher_is_kept(pp_file):
    path, _ = pp_file
    state, meta = read_weights(path)
    state = dict(state)
    key = next(k for k in state if k.startswith("matcher."))
    state[key] = state[key] + 1
    with pytest.raises(ValueError, match="not ImageNet"):
        shipping_state(state, meta, drop_imagenet_matcher=True)


def test_unknown_matcher_name_is_a_clear_error(pp_file, tmp_path):
    path, _ = pp_file
    state, meta = read_weights(path)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata={**meta, "matcher": "dino"})
    with pytest.raises(ZoomsrError, match="unknown matcher 'dino'"):
        load_checkpoint_model(bad)
