import numpy as np
import pytest
import torch

from zoomsr.convert.edsr_pytorch import (
    convert_edsr_pytorch,
    infer_architecture,
    read_official_state,
)
from zoomsr.errors import ZoomsrError
from zoomsr.infer.ensemble import self_ensemble

# Fixture tolerance: 1e-4 of the output range (0.0255 on 0..255).
TOL = 1e-4


@pytest.mark.parametrize(
    ("fixture", "name", "scale", "params"),
    [("edsr_baseline_x2", "edsr-baseline", 2, 1_369_859), ("rcan_x4", "rcan", 4, 856_347)],
)
def test_official_checkpoint_matches_parity_outputs(shared, fixture, name, scale, params):
    root = shared("parity", fixture)
    model = convert_edsr_pytorch(root / "weights.pt")
    assert (model.model_name, model.scale) == (name, scale)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == params
    for stem in ("", "_odd"):
        x = torch.from_numpy(np.load(root / f"input{stem}.npy")) / 255
        with torch.no_grad():
            plain = model(x) * 255
            x8 = self_ensemble(model, x) * 255
        expected = torch.from_numpy(np.load(root / f"output{stem}.npy"))
        expected_x8 = torch.from_numpy(np.load(root / f"output_x8{stem}.npy"))
        assert (plain - expected).abs().max().item() <= TOL * 255
        assert (x8 - expected_x8).abs().max().item() <= TOL * 255


def test_meanshift_comes_from_the_checkpoint(shared):
    state = read_official_state(shared("parity", "edsr_baseline_x2", "weights.pt"))
    model = convert_edsr_pytorch(shared("parity", "edsr_baseline_x2", "weights.pt"))
    assert torch.equal(model.sub_mean.weight, state["sub_mean.weight"])
    assert not torch.equal(model.sub_mean.weight, torch.eye(3).view(3, 3, 1, 1))


def test_architecture_inferred_for_full_size_rcan_keys():
    from zoomsr.models import load_model

    full = load_model("rcan", 4)
    name, scale, config = infer_architecture(full.state_dict())
    assert (name, scale) == ("rcan", 4)
    assert config == {"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16}
    name, scale, config = infer_architecture(load_model("edsr", 3).state_dict())
    assert (name, scale, config["n_resblocks"], config["res_scale"]) == ("edsr", 3, 32, 0.1)


def test_bad_checkpoint_gives_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ZoomsrError, match="cannot read checkpoint"):
        convert_edsr_pytorch(bad)
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(ZoomsrError, match="not an EDSR-PyTorch"):
        convert_edsr_pytorch(tmp_path / "y.pt")
