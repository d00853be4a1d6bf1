import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.models import list_models, load_model
from zoomsr.models.checkpoints import read_weights, save_weights


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("name", "scale", "params"),
    [
        ("edsr-baseline", 2, 1_369_859),  # 1.37 M
        ("edsr", 4, 43_089_923),  # 43.1 M
        ("rcan", 4, 15_592_355),  # about 15.6 M
        ("srcnn", 2, 57_281),  # 57 K
    ],
)
def test_parameter_counts(name, scale, params):
    assert _trainable(load_model(name, scale)) == params


@pytest.mark.parametrize(
    "name", ["bicubic", "srcnn", "fsrcnn", "espcn", "vdsr", "postup", "edsr-baseline"]
)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_model_upscales_by_its_scale(name, scale):
    model = load_model(name, scale, **({"n_resblocks": 2} if name == "edsr-baseline" else {}))
    with torch.no_grad():
        y = model(torch.rand(1, 3, 11, 13))
    assert y.shape == (1, 3, 11 * scale, 13 * scale)


def test_registry_lists_and_rejects():
    names = {s.name for s in list_models()}
    assert {
        "bicubic",
        "srcnn",
        "fsrcnn",
        "espcn",
        "vdsr",
        "edsr-baseline",
        "edsr",
        "rcan",
        "postup",
    } <= names
    with pytest.raises(ZoomsrError, match="did you mean 'edsr'"):
        load_model("edsrr", 2)
    with pytest.raises(ZoomsrError, match="does not support scale 5"):
        load_model("edsr", 5)


def test_model_files_carry_their_identity(tmp_path):
    model = load_model("edsr-baseline", 3, n_resblocks=2, n_feats=16)
    path = save_weights(model, tmp_path / "m.safetensors", {"step": 7})
    _, meta = read_weights(path)
    assert meta["model"] == "edsr-baseline" and meta["scale"] == "3" and meta["step"] == "7"
    loaded = load_model(str(path))
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ZoomsrError, match="x3 model; it cannot upscale x2"):
        load_model(str(path), scale=2)
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(ZoomsrError, match="cannot read model file"):
        load_model(str(tmp_path / "bad.safetensors"))


def test_luma_models_keep_colour_from_bicubic():
    # A zeroed SRCNN body outputs Y = 0 for the SR, but Cb/Cr still follow the bicubic image.
    model = load_model("srcnn", 2)
    x = torch.rand(1, 3, 10, 10)
    y = model(x)
    assert y.shape == (1, 3, 20, 20) and torch.isfinite(y).all()
